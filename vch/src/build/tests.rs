//! The step loop against an in-memory [`BuildHost`]: what runs where, the cache, the
//! variables each step sees, and the errors.

use super::context::tests::context_of;
use super::dockerfile;
use super::executor::{build, Request};
use super::host::*;
use crate::images::digest::Digest;
use crate::images::manifest::{ContainerConfig, ImageConfigFile};
use docker_api::async_trait;
use docker_api::options::BuildOptions;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// An image the fake keeps: config, parent, cache key.
type Kept = (ImageConfigFile, Option<Digest>, String);

#[derive(Default)]
struct FakeHost {
    images: Mutex<BTreeMap<Digest, Kept>>,
    tags: Mutex<Vec<String>>,
    execs: Mutex<Vec<StepExec>>,
    /// Tar entry names of every copy-in.
    puts: Mutex<Vec<Vec<String>>>,
    started: Mutex<Vec<String>>,
    removed: Mutex<Vec<String>>,
    run_exit: i64,
}

impl FakeHost {
    fn with_base(cmd: &[&str]) -> (Arc<FakeHost>, Digest) {
        let h = FakeHost::default();
        let file = ImageConfigFile {
            config: Some(ContainerConfig {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                env: Some(vec!["PATH=/bin".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = Digest::of(b"base");
        h.images
            .lock()
            .insert(id.clone(), (file, None, String::new()));
        (Arc::new(h), id)
    }

    fn add(&self, file: ImageConfigFile, parent: Option<&Digest>, key: &str) -> Digest {
        let mut images = self.images.lock();
        let id = Digest::of(
            format!(
                "{}{key}{}",
                images.len(),
                serde_json::to_string(&file).unwrap()
            )
            .as_bytes(),
        );
        images.insert(id.clone(), (file, parent.cloned(), key.to_string()));
        id
    }
}

#[async_trait]
impl BuildHost for FakeHost {
    async fn base_image(
        &self,
        name: &str,
        _: bool,
        _: Option<&str>,
        _: &Out,
    ) -> StepResult<Digest> {
        match name {
            "base" => Ok(Digest::of(b"base")),
            other => Err(format!("pull access denied for {other}").into()),
        }
    }
    async fn image_config(&self, id: &Digest) -> StepResult<ImageConfigFile> {
        Ok(self.images.lock()[id].0.clone())
    }
    fn cached(&self, parent: Option<&Digest>, key: &str) -> Option<Digest> {
        self.images
            .lock()
            .iter()
            .find(|(_, (_, p, k))| p.as_ref() == parent && k == key)
            .map(|(id, _)| id.clone())
    }
    async fn register(
        &self,
        c: &ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> StepResult<Digest> {
        Ok(self.add(c.clone(), parent, key))
    }
    async fn add_layer(
        &self,
        layer: PathBuf,
        mut c: ImageConfigFile,
        parent: Option<&Digest>,
        key: &str,
    ) -> StepResult<Digest> {
        self.puts
            .lock()
            .push(tar_names(&std::fs::read(&layer).unwrap()));
        c.rootfs.diff_ids.push(Digest::of(key.as_bytes()));
        Ok(self.add(c, parent, key))
    }
    async fn start(&self, image: &Digest, _: &StepContainer) -> StepResult<String> {
        let id = format!("{:064x}", self.started.lock().len() + 1);
        assert!(self.images.lock().contains_key(image));
        self.started.lock().push(id.clone());
        Ok(id)
    }
    async fn exec(&self, _: &str, e: &StepExec, out: &Out, _: bool) -> StepResult<i64> {
        self.execs.lock().push(e.clone());
        out.text("ran\n");
        Ok(self.run_exit)
    }
    async fn stat(&self, _: &str, path: &str) -> StepResult<Option<bool>> {
        Ok((path == "/existing").then_some(true))
    }
    async fn get(&self, _: &str, _: &str) -> StepResult<Vec<u8>> {
        Ok(Vec::new())
    }
    async fn put(&self, _: &str, tar: PathBuf) -> StepResult<()> {
        self.puts
            .lock()
            .push(tar_names(&std::fs::read(&tar).unwrap()));
        Ok(())
    }
    async fn commit(
        &self,
        _: &str,
        mut c: ImageConfigFile,
        parent: &Digest,
        key: &str,
    ) -> StepResult<Digest> {
        c.rootfs.diff_ids.push(Digest::of(key.as_bytes()));
        Ok(self.add(c, Some(parent), key))
    }
    async fn remove(&self, container: &str) {
        self.removed.lock().push(container.to_string());
    }
    async fn tag(&self, _: &Digest, reference: &str) -> StepResult<()> {
        self.tags.lock().push(reference.to_string());
        Ok(())
    }
    fn spool_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }
}

fn tar_names(data: &[u8]) -> Vec<String> {
    tar::Archive::new(data)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// Runs a build; returns its result and the text it streamed.
async fn run(
    host: &Arc<FakeHost>,
    dockerfile: &str,
    files: &[(&str, &str)],
    opts: BuildOptions,
) -> (StepResult<Digest>, String) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let req = Request {
        opts,
        dockerfile: dockerfile::parse(dockerfile).unwrap(),
        context: context_of(files),
    };
    let result = build(host.clone(), req, Out(tx)).await;
    let mut text = String::new();
    while let Ok(Ok(m)) = rx.try_recv() {
        text.push_str(m.stream.as_deref().unwrap_or_default());
    }
    (result, text)
}

#[tokio::test]
async fn steps_run_in_containers_and_a_second_build_is_all_cache() {
    let (host, _) = FakeHost::with_base(&["sh"]);
    let df =
        "FROM base\nARG V=1\nENV A=$V\nWORKDIR /app\nCOPY f.txt ./\nRUN echo $A\nCMD [\"run\"]\n";
    let files = [("f.txt", "x")];
    let opts = BuildOptions {
        tags: vec!["app:1".into()],
        remove: true,
        build_args: [("V".to_string(), Some("2".to_string()))].into(),
        ..Default::default()
    };
    let (id, text) = run(&host, df, &files, opts.clone()).await;
    let id = id.unwrap();
    assert!(
        text.contains("Step 1/7 : FROM base") && text.contains("Step 6/7 : RUN echo $A"),
        "{text}"
    );
    assert!(
        text.contains(" ---> Running in ") && text.contains("Successfully tagged app:1"),
        "{text}"
    );
    // COPY and RUN each had a container; both were removed.
    assert_eq!(host.started.lock().len(), 2);
    assert_eq!(host.removed.lock().len(), 2);
    assert_eq!(
        host.puts.lock()[0],
        ["app/f.txt"],
        "relative to WORKDIR, into the directory"
    );
    let exec = host.execs.lock()[0].clone();
    assert_eq!(exec.argv, ["/bin/sh", "-c", "echo $A"]);
    assert_eq!(exec.env, ["V=2"], "build args reach RUN as environment");
    assert_eq!(exec.workdir, "/app");
    let cfg = host.images.lock()[&id].0.config.clone().unwrap();
    assert_eq!(
        cfg.env.unwrap(),
        ["PATH=/bin", "A=2"],
        "ENV expands the ARG; the ARG itself is not kept"
    );
    assert_eq!(cfg.cmd.unwrap(), ["run"]);

    let (again, text) = run(&host, df, &files, opts.clone()).await;
    assert_eq!(again.unwrap(), id);
    assert_eq!(text.matches("Using cache").count(), 6, "{text}");
    assert_eq!(host.started.lock().len(), 2, "nothing ran");

    // Another build arg value misses from the ARG on.
    let other = BuildOptions {
        build_args: [("V".to_string(), Some("3".to_string()))].into(),
        ..opts
    };
    let (third, text) = run(&host, df, &files, other).await;
    assert_ne!(third.unwrap(), id);
    assert_eq!(text.matches("Using cache").count(), 1, "{text}");
}

#[tokio::test]
async fn a_failing_run_reports_its_exit_code_and_leaves_nothing() {
    let (host, _) = FakeHost::with_base(&["sh"]);
    let host = Arc::new(FakeHost {
        run_exit: 3,
        images: Mutex::new(host.images.lock().clone()),
        ..Default::default()
    });
    let (r, _) = run(
        &host,
        "FROM base\nRUN exit 3\n",
        &[],
        BuildOptions::default(),
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.code, 3);
    assert_eq!(
        e.message,
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    );
    assert_eq!(
        host.removed.lock().len(),
        1,
        "the failed step's container goes too"
    );
}

#[tokio::test]
async fn entrypoint_drops_an_inherited_cmd_only() {
    let (host, _) = FakeHost::with_base(&["sh"]);
    let (id, _) = run(
        &host,
        "FROM base\nENTRYPOINT [\"/init\"]\n",
        &[],
        BuildOptions::default(),
    )
    .await;
    let cfg = host.images.lock()[&id.unwrap()].0.config.clone().unwrap();
    assert_eq!(
        (cfg.entrypoint.unwrap(), cfg.cmd),
        (vec!["/init".to_string()], None)
    );
    let (id, _) = run(
        &host,
        "FROM base\nCMD [\"x\"]\nENTRYPOINT [\"/init\"]\n",
        &[],
        BuildOptions::default(),
    )
    .await;
    let cfg = host.images.lock()[&id.unwrap()].0.config.clone().unwrap();
    assert_eq!(cfg.cmd.unwrap(), ["x"]);
}

#[tokio::test]
async fn stages_global_args_and_targets() {
    let (host, _) = FakeHost::with_base(&["sh"]);
    // A global ARG serves FROM; inside the stage it is unset until declared again.
    let df = "ARG IMG=base\nFROM $IMG AS one\nENV SEEN=\"[$IMG]\"\nFROM one AS two\nARG IMG\nENV SEEN2=$IMG\nFROM scratch\nCOPY a /a\n";
    let target = BuildOptions {
        target: Some("two".into()),
        ..Default::default()
    };
    let (id, text) = run(&host, df, &[("a", "1")], target).await;
    let env = host.images.lock()[&id.unwrap()]
        .0
        .config
        .clone()
        .unwrap()
        .env
        .unwrap();
    assert!(
        env.contains(&"SEEN=[]".to_string()) && env.contains(&"SEEN2=base".to_string()),
        "{env:?}"
    );
    assert!(
        !text.contains("COPY a"),
        "stages after the target do not run: {text}"
    );

    // FROM scratch + COPY: a layer made without a container.
    let before = host.started.lock().len();
    let (id, _) = run(&host, df, &[("a", "1")], BuildOptions::default()).await;
    assert_eq!(host.started.lock().len(), before);
    assert_eq!(host.images.lock()[&id.unwrap()].0.rootfs.diff_ids.len(), 1);
    assert_eq!(host.puts.lock().last().unwrap(), &["a"]);

    let bad = BuildOptions {
        target: Some("nope".into()),
        ..Default::default()
    };
    let (r, _) = run(&host, df, &[], bad).await;
    assert!(r
        .unwrap_err()
        .message
        .contains("failed to reach build target nope"));
    let (r, _) = run(
        &host,
        "FROM scratch\nRUN true\n",
        &[],
        BuildOptions::default(),
    )
    .await;
    assert!(r.unwrap_err().message.contains("FROM scratch has none"));
    let (r, _) = run(
        &host,
        "FROM base\nCOPY a b /notadir\n",
        &[("a", "1"), ("b", "2")],
        BuildOptions::default(),
    )
    .await;
    assert!(r
        .unwrap_err()
        .message
        .contains("must be a directory and end with a /"));
}
