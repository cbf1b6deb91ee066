//! The step loop: stages in order up to `--target`, each step's cache key checked before
//! it runs, its image registered after, `Step N/M : ...` output as dockerd's classic
//! builder writes it.

use super::config::{self, argv};
use super::context::{Context, Owner};
use super::dockerfile::{self, Cmd, Dockerfile, Instr, Step};
use super::host::{BuildHost, Out, StepContainer, StepError, StepExec, StepResult};
use super::words;
use crate::images::digest::Digest;
use crate::images::manifest::{HistoryEntry, ImageConfigFile, RootFs};
use docker_api::options::BuildOptions;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Build arguments every build accepts without an `ARG` (dockerd's predefined ones).
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub struct Request {
    pub opts: BuildOptions,
    pub dockerfile: Dockerfile,
    pub context: Context,
}

/// Where a stage stands: its image so far and the variables in scope.
#[derive(Clone)]
struct Stage {
    /// None: FROM scratch and nothing made yet.
    image: Option<Digest>,
    file: ImageConfigFile,
    /// ARGs declared in the stage, with their values.
    args: BTreeMap<String, Option<String>>,
    /// Whether this Dockerfile set CMD in the stage (an ENTRYPOINT then keeps it).
    cmd_set: bool,
}

impl Stage {
    fn var(&self, name: &str) -> Option<String> {
        let env = self.file.config.as_ref().and_then(|c| c.env.as_ref());
        env.into_iter()
            .flatten()
            .rev()
            .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
            .or_else(|| self.args.get(name).cloned().flatten())
    }

    fn config(&mut self) -> &mut crate::images::manifest::ContainerConfig {
        self.file.config.get_or_insert_with(Default::default)
    }
}

struct Builder {
    host: Arc<dyn BuildHost>,
    opts: BuildOptions,
    escape: char,
    context: Context,
    out: Out,
    /// Each finished stage, by position.
    done: Vec<Stage>,
    names: Vec<Option<String>>,
    used_args: BTreeSet<String>,
    /// The ARGs before the first FROM: a stage's `ARG NAME` without a value takes theirs.
    global: BTreeMap<String, Option<String>>,
    step: usize,
    total: usize,
}

/// Runs the build; returns the image id (already tagged).
pub async fn build(host: Arc<dyn BuildHost>, req: Request, out: Out) -> StepResult<Digest> {
    let Request {
        opts,
        dockerfile,
        context,
    } = req;
    let last = match &opts.target {
        Some(t) => dockerfile
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_lowercase().as_str()))
            .ok_or_else(|| format!("failed to reach build target {t} in Dockerfile"))?,
        None => dockerfile.stages.len() - 1,
    };
    let stages = &dockerfile.stages[..=last];
    let total = stages.iter().map(|s| s.steps.len() + 1).sum::<usize>()
        + usize::from(!opts.labels.is_empty());
    let mut b = Builder {
        host,
        escape: dockerfile.escape,
        context,
        out,
        done: Vec::new(),
        names: stages.iter().map(|s| s.name.clone()).collect(),
        used_args: BTreeSet::new(),
        global: BTreeMap::new(),
        step: 0,
        total,
        opts,
    };
    // Global ARGs: for FROM lines only.
    let mut global = Stage {
        image: None,
        file: ImageConfigFile::default(),
        args: BTreeMap::new(),
        cmd_set: false,
    };
    for a in &dockerfile.global_args {
        b.declare_args(&mut global, a)?;
    }
    b.global = global.args.clone();
    for (i, s) in stages.iter().enumerate() {
        let from = words::word(&s.from, &|n: &str| global.var(n), b.escape)?;
        b.announce(&s.text);
        let mut stage = b.start_stage(&from, s.platform.as_deref()).await?;
        b.say(format!(" ---> {}\n", short(stage.image.as_ref())));
        let triggers = stage
            .file
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        if !triggers.is_empty() {
            let plural = if triggers.len() == 1 { "" } else { "s" };
            b.say(format!(
                "# Executing {} build trigger{plural}\n",
                triggers.len()
            ));
            for t in &triggers {
                let step = dockerfile::trigger(t)?;
                b.run_step(&mut stage, &step).await?;
            }
        }
        for step in &s.steps {
            if b.out.gone() {
                return Err("the client went away; build cancelled".into());
            }
            b.announce(&step.text);
            b.run_step(&mut stage, step).await?;
        }
        if i == last && !b.opts.labels.is_empty() {
            let text = b
                .opts
                .labels
                .iter()
                .map(|(k, v)| format!("{k:?}={v:?}"))
                .collect::<Vec<_>>()
                .join(" ");
            let step = Step {
                text: format!("LABEL {text}"),
                instr: Instr::Label(text),
            };
            b.announce(&step.text);
            b.run_step(&mut stage, &step).await?;
        }
        b.done.push(stage);
    }
    let stage = b.done.pop().expect("one stage at least");
    let id = match stage.image {
        Some(id) => id,
        // `FROM scratch` alone: an image with no layers.
        None => b.host.register(&stage.file, None, "scratch").await?,
    };
    let unused: Vec<&String> = b
        .opts
        .build_args
        .keys()
        .filter(|k| !b.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        b.say(format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            list.join(" ")
        ));
    }
    b.out.message(docker_api::progress::JsonMessage {
        aux: Some(serde_json::json!({ "ID": id.to_string() })),
        ..Default::default()
    });
    if b.opts.quiet {
        let _ = b.out.0.send(Ok(docker_api::progress::JsonMessage {
            stream: Some(format!("{id}\n")),
            ..Default::default()
        }));
    } else {
        b.out.text(format!("Successfully built {}\n", id.short()));
    }
    for t in &b.opts.tags.clone() {
        b.host.tag(&id, t).await?;
        if !b.opts.quiet {
            b.out.text(format!("Successfully tagged {}\n", familiar(t)));
        }
    }
    Ok(id)
}

/// A tag as dockerd prints it: with `:latest` when no tag was given.
fn familiar(t: &str) -> String {
    let name_part = t.rsplit('/').next().unwrap_or(t);
    if name_part.contains(':') || t.contains('@') {
        t.to_string()
    } else {
        format!("{t}:latest")
    }
}

fn short(id: Option<&Digest>) -> String {
    id.map(|d| d.short().to_string())
        .unwrap_or_else(|| "scratch".into())
}

/// A step's cache key: the parent, what the step does, and what it reads.
fn cache_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

impl Builder {
    fn announce(&mut self, text: &str) {
        self.step += 1;
        if !self.opts.quiet {
            self.out
                .text(format!("Step {}/{} : {text}\n", self.step, self.total));
        }
    }

    fn say(&self, s: String) {
        if !self.opts.quiet {
            self.out.text(s);
        }
    }

    fn declare_args(&mut self, stage: &mut Stage, args: &str) -> StepResult<()> {
        for w in words::words(args, &|n: &str| stage.var(n), self.escape)? {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.clone(), None),
            };
            if name.is_empty() {
                return Err("ARG requires a name".into());
            }
            let value = match self.opts.build_args.get(&name) {
                Some(Some(v)) => {
                    self.used_args.insert(name.clone());
                    Some(v.clone())
                }
                Some(None) => {
                    self.used_args.insert(name.clone());
                    default.or_else(|| self.global.get(&name).cloned().flatten())
                }
                None => default.or_else(|| self.global.get(&name).cloned().flatten()),
            };
            stage.args.insert(name, value);
        }
        Ok(())
    }

    /// The stage's starting point: an earlier stage, scratch, or an image.
    async fn start_stage(&mut self, from: &str, platform: Option<&str>) -> StepResult<Stage> {
        let fresh = |image: Option<Digest>, file: ImageConfigFile| Stage {
            image,
            file,
            args: BTreeMap::new(),
            cmd_set: false,
        };
        if let Some(prev) = self.stage_ref(from) {
            let s = &self.done[prev];
            return Ok(fresh(s.image.clone(), s.file.clone()));
        }
        if from.eq_ignore_ascii_case("scratch") {
            let file = ImageConfigFile {
                architecture: "amd64".into(),
                os: "linux".into(),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![],
                },
                config: Some(Default::default()),
                ..Default::default()
            };
            return Ok(fresh(None, file));
        }
        let id = self
            .host
            .base_image(
                from,
                self.opts.pull,
                platform.or(self.opts.platform.as_deref()),
                &self.out,
            )
            .await?;
        let file = self.host.image_config(&id).await?;
        Ok(fresh(Some(id), file))
    }

    /// An earlier stage named by `name` (its AS name or its index).
    fn stage_ref(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.names[..self.done.len()]
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|i| *i < self.done.len()))
    }

    async fn run_step(&mut self, stage: &mut Stage, step: &Step) -> StepResult<()> {
        let vars = stage.clone();
        let lookup = move |n: &str| vars.var(n);
        match &step.instr {
            Instr::Arg(args) => {
                self.declare_args(stage, args)?;
                let text = format!("ARG {args}");
                self.config_step(stage, &text).await
            }
            Instr::Maintainer(m) => {
                stage.file.author = Some(words::word(m, &lookup, self.escape)?);
                self.config_step(stage, &step.text).await
            }
            Instr::Run(cmd, flags) => {
                if let Some((f, _)) = flags.first() {
                    return Err(format!(
                        "RUN --{f} is a BuildKit feature; this VCH runs the classic builder"
                    )
                    .into());
                }
                self.run(stage, cmd).await
            }
            Instr::Copy {
                add,
                src,
                dest,
                flags,
            } => self.copy(stage, *add, src, dest, flags).await,
            other => {
                if let Instr::Cmd(_) = other {
                    stage.cmd_set = true;
                }
                let had_cmd = stage.cmd_set;
                config::apply(stage.config(), other, &lookup, self.escape)?;
                // An ENTRYPOINT drops a CMD inherited from the base image.
                if matches!(other, Instr::Entrypoint(_)) && !had_cmd {
                    stage.config().cmd = None;
                }
                self.config_step(stage, &step.text).await
            }
        }
    }

    /// Records a config-only step (its image made, or found in the cache).
    async fn config_step(&mut self, stage: &mut Stage, text: &str) -> StepResult<()> {
        let created_by = format!("/bin/sh -c #(nop)  {text}");
        let key = cache_key(&[
            &created_by,
            &serde_json::to_string(&stage.file.config).unwrap_or_default(),
            stage.file.author.as_deref().unwrap_or_default(),
        ]);
        if self.use_cache(stage, &key).await? {
            return Ok(());
        }
        push_history(&mut stage.file, created_by, true);
        let id = self
            .host
            .register(&stage.file, stage.image.as_ref(), &key)
            .await?;
        self.say(format!(" ---> {}\n", id.short()));
        stage.image = Some(id);
        Ok(())
    }

    /// A cache hit moves the stage to the cached image.
    async fn use_cache(&mut self, stage: &mut Stage, key: &str) -> StepResult<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(id) = self.host.cached(stage.image.as_ref(), key) else {
            return Ok(false);
        };
        stage.file = self.host.image_config(&id).await?;
        self.say(format!(" ---> Using cache\n ---> {}\n", id.short()));
        stage.image = Some(id);
        Ok(true)
    }

    fn container(&self, stage: &Stage, cmd: Vec<String>) -> StepContainer {
        let c = stage.file.config.clone().unwrap_or_default();
        StepContainer {
            cmd,
            env: c.env.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            workdir: c.working_dir.unwrap_or_default(),
            network: self.opts.network_mode.clone(),
            extra_hosts: self.opts.extra_hosts.clone(),
        }
    }

    async fn run(&mut self, stage: &mut Stage, cmd: &Cmd) -> StepResult<()> {
        let shell = stage.file.config.as_ref().and_then(|c| c.shell.clone());
        let argv = argv(cmd, shell.as_ref());
        // The stage's ARGs reach the command as environment, not the image.
        let args: Vec<String> = stage
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        let created_by = if args.is_empty() {
            argv.join(" ")
        } else {
            format!("|{} {} {}", args.len(), args.join(" "), argv.join(" "))
        };
        let key = cache_key(&[
            &created_by,
            &serde_json::to_string(&stage.file.config).unwrap_or_default(),
        ]);
        if self.use_cache(stage, &key).await? {
            return Ok(());
        }
        let Some(parent) = stage.image.clone() else {
            return Err(format!(
                "RUN needs a shell or program in the image; FROM scratch has none: {}",
                argv.join(" ")
            )
            .into());
        };
        let c = self.container(stage, argv.clone());
        let id = self.host.start(&parent, &c).await?;
        self.say(format!(" ---> Running in {}\n", &id[..12]));
        let exec = StepExec {
            argv: argv.clone(),
            env: args,
            user: c.user.clone(),
            workdir: c.workdir.clone(),
        };
        let result = self.host.exec(&id, &exec, &self.out, self.opts.quiet).await;
        let result = match result {
            Ok(0) => {
                let mut file = stage.file.clone();
                push_history(&mut file, created_by, false);
                self.host.commit(&id, file, &parent, &key).await
            }
            Ok(code) => Err(StepError {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    argv.join(" ")
                ),
                code: code as i32,
            }),
            Err(e) => Err(e),
        };
        self.finish_container(&id, result.is_ok()).await;
        let image = result?;
        stage.file = self.host.image_config(&image).await?;
        self.say(format!(" ---> {}\n", image.short()));
        stage.image = Some(image);
        Ok(())
    }

    async fn finish_container(&self, id: &str, ok: bool) {
        if self.opts.remove || self.opts.force_remove || !ok {
            self.host.remove(id).await;
            if ok {
                self.say(format!("Removing intermediate container {}\n", &id[..12]));
            }
        }
    }

    async fn copy(
        &mut self,
        stage: &mut Stage,
        add: bool,
        src: &[String],
        dest: &str,
        flags: &dockerfile::Flags,
    ) -> StepResult<()> {
        let what = if add { "ADD" } else { "COPY" };
        let vars = stage.clone();
        let lookup = move |n: &str| vars.var(n);
        let mut from = None;
        let mut chown = None;
        let mut chmod = None;
        for (name, value) in flags {
            let v = words::word(value.as_deref().unwrap_or_default(), &lookup, self.escape)?;
            match name.as_str() {
                "from" if !add => from = Some(v),
                "chown" => chown = Some(v),
                "chmod" => {
                    chmod = Some(
                        u32::from_str_radix(&v, 8)
                            .map_err(|_| format!("{what} --chmod: {v:?} is not an octal mode"))?,
                    )
                }
                other => {
                    return Err(
                        format!("{what}: unknown flag --{other} (or a BuildKit feature)").into(),
                    )
                }
            }
        }
        let src: Vec<String> = src
            .iter()
            .map(|s| words::word(s, &lookup, self.escape))
            .collect::<Result<_, _>>()?;
        let dest_raw = words::word(dest, &lookup, self.escape)?;
        let workdir = stage
            .file
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone());
        let mut dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!(
                "{}/{dest_raw}",
                workdir.as_deref().unwrap_or("").trim_end_matches('/')
            )
        };
        if dest_raw.ends_with('/') && !dest.ends_with('/') {
            dest.push('/');
        }
        if dest_raw == "." || dest_raw.ends_with("/.") {
            dest = format!("{}/", dest.trim_end_matches('.').trim_end_matches('/'));
        }
        if let Some(url) = src
            .iter()
            .find(|s| s.contains("://") || s.starts_with("git@"))
        {
            return Err(format!(
                "{what} from a URL ({url}) is not supported by this VCH: builds have no outside network; put the file in the build context"
            )
            .into());
        }
        match from {
            Some(f) => self.copy_from(stage, &f, &src, &dest, chown, chmod).await,
            None => {
                self.copy_context(stage, add, &src, &dest, chown, chmod)
                    .await
            }
        }
    }

    async fn copy_context(
        &mut self,
        stage: &mut Stage,
        add: bool,
        src: &[String],
        dest: &str,
        chown: Option<String>,
        chmod: Option<u32>,
    ) -> StepResult<()> {
        let what = if add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for s in src {
            let found = self
                .context
                .sources(s)
                .map_err(|e| format!("{what} failed: {e}"))?;
            sources.extend(found);
        }
        if sources.is_empty() {
            return Err(format!("{what} failed: no source files were specified").into());
        }
        let wildcard = src.iter().any(|s| s.contains(['*', '?', '[']));
        if (sources.len() > 1 || wildcard) && !dest.ends_with('/') && sources.len() != 1 {
            return Err(format!(
                "When using {what} with more than one source file, the destination must be a directory and end with a /"
            )
            .into());
        }
        let digest = self.context.digest(&sources);
        let created_by = format!(
            "/bin/sh -c #(nop) {what} {}:{digest} in {dest} ",
            if sources.len() == 1 && !self.context.is_dir(&sources[0]) {
                "file"
            } else {
                "dir"
            }
        );
        let key = cache_key(&[
            &created_by,
            chown.as_deref().unwrap_or_default(),
            &format!("{chmod:?}"),
            &serde_json::to_string(&stage.file.config).unwrap_or_default(),
        ]);
        if self.use_cache(stage, &key).await? {
            return Ok(());
        }
        let spool = self.host.spool_dir();
        let mut file = stage.file.clone();
        push_history(&mut file, created_by, false);
        match stage.image.clone() {
            // Nothing exists yet: the layer is the copy itself, no container needed.
            None => {
                let ids = match chown.as_deref() {
                    Some(c) => Some(numeric_owner(c).ok_or_else(|| {
                        format!(
                            "{what} --chown={c}: names need an /etc/passwd; FROM scratch has none"
                        )
                    })?),
                    None => None,
                };
                let owner = Owner { ids, mode: chmod };
                let tar = self.write_tar(&spool, |ctx, out| {
                    for s in &sources {
                        copy_one(
                            ctx,
                            out,
                            s,
                            dest,
                            dest.ends_with('/') || sources.len() > 1,
                            add,
                            owner,
                        )?;
                    }
                    Ok(())
                })?;
                let id = self.host.add_layer(tar, file, None, &key).await?;
                self.finish_copy(stage, id).await
            }
            Some(parent) => {
                let c = self.container(stage, vec![format!("#(nop) {what}")]);
                let container = self.host.start(&parent, &c).await?;
                let result = async {
                    let dest_is_dir = dest.ends_with('/')
                        || sources.len() > 1
                        || self.host.stat(&container, dest).await? == Some(true);
                    let ids = match chown.as_deref() {
                        Some(c) => Some(self.owner_ids(&container, c).await?),
                        None => None,
                    };
                    let owner = Owner { ids, mode: chmod };
                    let tar = self.write_tar(&spool, |ctx, out| {
                        for s in &sources {
                            copy_one(ctx, out, s, dest, dest_is_dir, add, owner)?;
                        }
                        Ok(())
                    })?;
                    let put = self.host.put(&container, tar.clone()).await;
                    let _ = std::fs::remove_file(&tar);
                    put?;
                    self.host.commit(&container, file, &parent, &key).await
                }
                .await;
                self.finish_container(&container, result.is_ok()).await;
                self.finish_copy(stage, result?).await
            }
        }
    }

    async fn finish_copy(&mut self, stage: &mut Stage, id: Digest) -> StepResult<()> {
        stage.file = self.host.image_config(&id).await?;
        self.say(format!(" ---> {}\n", id.short()));
        stage.image = Some(id);
        Ok(())
    }

    /// Writes a COPY's tar into the spool directory (blocking work on the context file).
    fn write_tar(
        &self,
        spool: &std::path::Path,
        f: impl FnOnce(&Context, &mut tar::Builder<std::fs::File>) -> std::io::Result<()>,
    ) -> StepResult<PathBuf> {
        let path = spool.join(format!("build-copy-{}.tar", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&path).map_err(|e| format!("COPY: {e}"))?;
        let mut out = tar::Builder::new(file);
        let done = f(&self.context, &mut out).and_then(|_| out.finish());
        if let Err(e) = done {
            let _ = std::fs::remove_file(&path);
            return Err(format!("COPY failed: {e}").into());
        }
        Ok(path)
    }

    /// `--chown=user[:group]` as ids, names looked up in the image's /etc/passwd and
    /// /etc/group.
    async fn owner_ids(&self, container: &str, spec: &str) -> StepResult<(u64, u64)> {
        if let Some(ids) = numeric_owner(spec) {
            return Ok(ids);
        }
        let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
        let passwd = self.file_in(container, "/etc/passwd").await?;
        let (uid, user_gid) = match user.parse::<u64>() {
            Ok(n) => (n, n),
            Err(_) => passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 3 && f[0] == user)
                .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .ok_or_else(|| {
                    format!("unable to find user {user}: no matching entries in passwd file")
                })?,
        };
        let gid = match group {
            "" => user_gid,
            g => match g.parse::<u64>() {
                Ok(n) => n,
                Err(_) => self
                    .file_in(container, "/etc/group")
                    .await?
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 2 && f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| {
                        format!("unable to find group {g}: no matching entries in group file")
                    })?,
            },
        };
        Ok((uid, gid))
    }

    async fn file_in(&self, container: &str, path: &str) -> StepResult<String> {
        let tar = self.host.get(container, path).await?;
        let mut ar = tar::Archive::new(&tar[..]);
        let mut text = String::new();
        if let Some(Ok(mut e)) = ar.entries().map_err(|e| e.to_string())?.next() {
            std::io::Read::read_to_string(&mut e, &mut text).map_err(|e| e.to_string())?;
        }
        Ok(text)
    }

    /// `COPY --from=stage|image`: the files come out of a container of that image.
    async fn copy_from(
        &mut self,
        stage: &mut Stage,
        from: &str,
        src: &[String],
        dest: &str,
        chown: Option<String>,
        chmod: Option<u32>,
    ) -> StepResult<()> {
        let source = match self.stage_ref(from) {
            Some(i) => self.done[i].image.clone().ok_or_else(|| {
                format!("COPY --from={from}: that stage has no files (FROM scratch)")
            })?,
            None => self.host.base_image(from, false, None, &self.out).await?,
        };
        let created_by = format!(
            "/bin/sh -c #(nop) COPY --from={} {} in {dest} ",
            source.short(),
            src.join(" ")
        );
        let key = cache_key(&[
            &created_by,
            &source.to_string(),
            chown.as_deref().unwrap_or_default(),
            &format!("{chmod:?}"),
            &serde_json::to_string(&stage.file.config).unwrap_or_default(),
        ]);
        if self.use_cache(stage, &key).await? {
            return Ok(());
        }
        // What the sources hold, fetched from a container of the source image.
        let c = self.container(
            &Stage {
                image: Some(source.clone()),
                file: ImageConfigFile::default(),
                args: BTreeMap::new(),
                cmd_set: false,
            },
            vec!["#(nop) COPY --from".into()],
        );
        let reader = self.host.start(&source, &c).await?;
        let fetched = async {
            let mut got = Vec::new();
            for s in src {
                let path = format!("/{}", super::ignore::clean(s));
                let is_dir = self
                    .host
                    .stat(&reader, &path)
                    .await?
                    .ok_or_else(|| format!("COPY failed: stat {path}: file does not exist"))?;
                got.push((path.clone(), is_dir, self.host.get(&reader, &path).await?));
            }
            StepResult::Ok(got)
        }
        .await;
        self.host.remove(&reader).await;
        let fetched = fetched?;
        if fetched.len() > 1 && !dest.ends_with('/') {
            return Err("When using COPY with more than one source file, the destination must be a directory and end with a /".into());
        }
        let mut file = stage.file.clone();
        push_history(&mut file, created_by, false);
        let spool = self.host.spool_dir();
        let write = |dest_is_dir: bool, ids: Option<(u64, u64)>| -> StepResult<PathBuf> {
            let path = spool.join(format!("build-copy-{}.tar", uuid::Uuid::new_v4()));
            let f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
            let mut out = tar::Builder::new(f);
            for (_, is_dir, tar) in &fetched {
                rebase(
                    tar,
                    &mut out,
                    dest,
                    *is_dir,
                    dest_is_dir,
                    Owner {
                        ids: Some(ids.unwrap_or((0, 0))),
                        mode: chmod,
                    },
                )
                .map_err(|e| format!("COPY failed: {e}"))?;
            }
            out.finish().map_err(|e| e.to_string())?;
            Ok(path)
        };
        match stage.image.clone() {
            None => {
                let ids = match chown.as_deref() {
                    Some(c) => Some(numeric_owner(c).ok_or(
                        "COPY --chown with names needs an /etc/passwd; FROM scratch has none",
                    )?),
                    None => None,
                };
                let tar = write(dest.ends_with('/'), ids)?;
                let id = self.host.add_layer(tar, file, None, &key).await?;
                self.finish_copy(stage, id).await
            }
            Some(parent) => {
                let c = self.container(stage, vec!["#(nop) COPY --from".into()]);
                let container = self.host.start(&parent, &c).await?;
                let result = async {
                    let dest_is_dir = dest.ends_with('/')
                        || self.host.stat(&container, dest).await? == Some(true);
                    let ids = match chown.as_deref() {
                        Some(c) => Some(self.owner_ids(&container, c).await?),
                        None => None,
                    };
                    let tar = write(dest_is_dir, ids)?;
                    let put = self.host.put(&container, tar.clone()).await;
                    let _ = std::fs::remove_file(&tar);
                    put?;
                    self.host.commit(&container, file, &parent, &key).await
                }
                .await;
                self.finish_container(&container, result.is_ok()).await;
                self.finish_copy(stage, result?).await
            }
        }
    }
}

/// One COPY/ADD source from the context into `out`.
fn copy_one(
    ctx: &Context,
    out: &mut tar::Builder<std::fs::File>,
    src: &str,
    dest: &str,
    dest_is_dir: bool,
    add: bool,
    owner: Owner,
) -> std::io::Result<()> {
    if add && ctx.is_archive(src) {
        // ADD unpacks a local archive; its entries keep their owners unless --chown.
        return ctx.unpack_into(out, src, dest, owner);
    }
    ctx.copy_into(out, src, dest, dest_is_dir, owner)
}

/// Rewrites a `docker cp` tar (rooted at the source's base name) to land at `dest`.
fn rebase(
    tar_bytes: &[u8],
    out: &mut tar::Builder<std::fs::File>,
    dest: &str,
    src_is_dir: bool,
    dest_is_dir: bool,
    owner: Owner,
) -> std::io::Result<()> {
    let dest = dest.trim_start_matches('/').trim_end_matches('/');
    let mut ar = tar::Archive::new(tar_bytes);
    for e in ar.entries()? {
        let mut e = e?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let name = super::ignore::clean(&name);
        if name.split('/').any(|p| p == "..") {
            return Err(std::io::Error::other(format!("entry {name:?} escapes")));
        }
        let (first, rest) = name.split_once('/').unwrap_or((&name, ""));
        let target = if src_is_dir {
            if rest.is_empty() {
                continue;
            }
            format!("{dest}/{rest}")
        } else if dest_is_dir {
            format!("{dest}/{first}")
        } else {
            dest.to_string()
        };
        let mut h = e.header().clone();
        if let Some((uid, gid)) = owner.ids {
            h.set_uid(uid);
            h.set_gid(gid);
        }
        if let Some(m) = owner
            .mode
            .filter(|_| h.entry_type() != tar::EntryType::Symlink)
        {
            h.set_mode(m);
        }
        match h.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let to = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                out.append_link(&mut h, target.trim_start_matches('/'), to)?;
            }
            _ => out.append_data(&mut h, target.trim_start_matches('/'), &mut e)?,
        }
    }
    Ok(())
}

/// `uid[:gid]` as numbers, when both are numbers.
fn numeric_owner(spec: &str) -> Option<(u64, u64)> {
    let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
    Some((u.parse().ok()?, g.parse().ok()?))
}

fn push_history(file: &mut ImageConfigFile, created_by: String, empty_layer: bool) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    file.created = Some(now.clone());
    file.history.push(HistoryEntry {
        created: Some(now),
        created_by: Some(created_by),
        empty_layer,
        ..Default::default()
    });
}
