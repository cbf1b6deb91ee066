//! In-memory fake backend used by the tests only. It records every call and "runs"
//! containers by interpreting a few commands:
//!
//! - `echo ARGS...`        prints ARGS on stdout, exits 0
//! - `warn ARGS...`        prints ARGS on stderr, exits 0
//! - `sh -c "exit N"`      exits N
//! - `cat`                 copies stdin to stdout until stdin is closed, exits 0
//! - `sleep`               runs until stopped or killed (exit 137)
//! - anything else         prints an error on stderr, exits 127

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use docker_api::backend::*;
use docker_api::models::*;
use docker_api::options::*;
use docker_api::{async_trait, Error, Filters, JsonMessage, Result};
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::{broadcast, mpsc, watch, Notify};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ExitState {
    exits: u64,
    code: i64,
    running: bool,
    removed: bool,
}

struct Container {
    id: String,
    name: String,
    image: String,
    cmd: Vec<String>,
    tty: bool,
    open_stdin: bool,
    auto_remove: bool,
    labels: HashMap<String, String>,
    status: ContainerStateStatusEnum,
    /// Client end of stdin, handed to the first attach that asks for stdin.
    stdin_client: Option<DuplexStream>,
    stdin_process: Option<DuplexStream>,
    subscribers: Vec<mpsc::UnboundedSender<OutputChunk>>,
    logs: Vec<LogChunk>,
    exit: watch::Sender<ExitState>,
    stop: Arc<Notify>,
    created: i64,
}

struct Exec {
    container: String,
    cmd: Vec<String>,
    exit_code: Option<i64>,
    running: bool,
}

#[derive(Default)]
struct State {
    containers: Vec<Container>,
    execs: HashMap<String, Exec>,
    images: Vec<String>,
    next: u64,
}

pub struct Fake {
    /// Handle on ourselves: started containers run in tasks that need an `Arc`.
    me: Weak<Fake>,
    state: Mutex<State>,
    calls: Mutex<Vec<String>>,
    events: broadcast::Sender<EventMessage>,
    /// Past events, for `since`. Locked while publishing so that a subscriber sees each
    /// event exactly once (from the history or live).
    history: Mutex<Vec<EventMessage>>,
    /// Delay between progress messages of a pull.
    pub pull_delay: Duration,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Fake {
    pub fn new() -> Arc<Self> {
        Arc::new_cyclic(|me| Fake {
            me: me.clone(),
            state: Mutex::new(State {
                images: vec!["busybox:latest".into()],
                ..Default::default()
            }),
            calls: Mutex::new(Vec::new()),
            events: broadcast::channel(256).0,
            history: Mutex::new(Vec::new()),
            pull_delay: Duration::from_millis(5),
        })
    }

    /// The calls seen so far, as "method id" strings.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until a call starting with `prefix` has been seen (a client the test started
    /// in the background has reached the backend); fails after 20 s.
    pub async fn wait_for_call(&self, prefix: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.calls().iter().any(|c| c.starts_with(prefix)) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {prefix} call: {:?}",
                self.calls()
            );
            // allow-sleep: poll interval of a deadline loop.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn record(&self, call: impl Into<String>) {
        self.calls.lock().unwrap().push(call.into());
    }

    fn event(&self, typ: EventMessageTypeEnum, action: &str, id: &str, name: &str) {
        let t = chrono::Utc::now();
        let mut history = self.history.lock().unwrap();
        let ev = EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(HashMap::from([("name".to_string(), name.to_string())])),
            }),
            scope: Some(EventMessageScopeEnum::LOCAL),
            time: Some(t.timestamp()),
            time_nano: t.timestamp_nanos_opt(),
        };
        history.push(ev.clone());
        let _ = self.events.send(ev);
    }

    fn normalize_image(name: &str) -> String {
        let name = name.strip_prefix("docker.io/").unwrap_or(name);
        let name = name.strip_prefix("library/").unwrap_or(name);
        if name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
        {
            name.to_string()
        } else {
            format!("{name}:latest")
        }
    }

    /// Index of the container `id` (full id, prefix or name).
    fn find(st: &State, id: &str) -> Result<usize> {
        let id = id.trim_start_matches('/');
        st.containers
            .iter()
            .position(|c| c.id == id || c.name == id)
            .or_else(|| {
                let m: Vec<_> = st
                    .containers
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.id.starts_with(id))
                    .collect();
                (m.len() == 1).then(|| m[0].0)
            })
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))
    }

    fn emit(st: &mut State, idx: usize, chunk: OutputChunk) {
        let c = &mut st.containers[idx];
        c.logs.push(LogChunk {
            kind: chunk.kind,
            timestamp: chrono::Utc::now(),
            data: chunk.data.clone(),
        });
        c.subscribers.retain(|s| s.send(chunk.clone()).is_ok());
    }

    fn exited(self: &Arc<Self>, id: &str, code: i64) {
        let mut st = self.state.lock().unwrap();
        let Ok(idx) = Self::find(&st, id) else { return };
        let c = &mut st.containers[idx];
        c.status = ContainerStateStatusEnum::EXITED;
        // Ending the subscriptions ends the attach streams.
        c.subscribers.clear();
        let auto_remove = c.auto_remove;
        let (cid, name) = (c.id.clone(), c.name.clone());
        c.exit.send_modify(|e| {
            e.exits += 1;
            e.code = code;
            e.running = false;
        });
        if auto_remove {
            let c = st.containers.remove(idx);
            c.exit.send_modify(|e| e.removed = true);
        }
        drop(st);
        self.event(EventMessageTypeEnum::CONTAINER, "die", &cid, &name);
    }

    /// Runs the "process" of container `id`.
    async fn run(
        self: Arc<Self>,
        id: String,
        cmd: Vec<String>,
        stdin: Option<DuplexStream>,
        stop: Arc<Notify>,
    ) {
        let out = |fake: &Arc<Fake>, chunk: OutputChunk| {
            let mut st = fake.state.lock().unwrap();
            if let Ok(idx) = Self::find(&st, &id) {
                Self::emit(&mut st, idx, chunk);
            }
        };
        // Let the client see the start before output arrives, like a real process.
        // allow-sleep: the fake process's start-up time, part of what it imitates.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let code = match cmd.first().map(String::as_str) {
            Some("echo") => {
                out(
                    &self,
                    OutputChunk::stdout(format!("{}\n", cmd[1..].join(" "))),
                );
                0
            }
            Some("warn") => {
                out(
                    &self,
                    OutputChunk::stderr(format!("{}\n", cmd[1..].join(" "))),
                );
                0
            }
            Some("sh") if cmd.len() == 3 && cmd[2].starts_with("exit ") => {
                cmd[2][5..].trim().parse().unwrap_or(1)
            }
            Some("cat") => {
                if let Some(mut stdin) = stdin {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        tokio::select! {
                            r = stdin.read(&mut buf) => match r {
                                Ok(0) | Err(_) => break,
                                Ok(n) => out(&self, OutputChunk::stdout(Bytes::copy_from_slice(&buf[..n]))),
                            },
                            _ = stop.notified() => break,
                        }
                    }
                }
                0
            }
            Some("sleep") => {
                stop.notified().await;
                137
            }
            other => {
                out(
                    &self,
                    OutputChunk::stderr(format!("{other:?}: command not found\n")),
                );
                127
            }
        };
        self.exited(&id, code);
    }

    fn summary(c: &Container) -> ContainerSummary {
        let state = match c.status {
            ContainerStateStatusEnum::RUNNING => ContainerSummaryStateEnum::RUNNING,
            ContainerStateStatusEnum::EXITED => ContainerSummaryStateEnum::EXITED,
            _ => ContainerSummaryStateEnum::CREATED,
        };
        let code = c.exit.borrow().code;
        ContainerSummary {
            id: Some(c.id.clone()),
            names: Some(vec![format!("/{}", c.name)]),
            image: Some(c.image.clone()),
            image_id: Some(format!("sha256:{:064}", 1)),
            command: Some(c.cmd.join(" ")),
            created: Some(c.created),
            state: Some(state),
            status: Some(match state {
                ContainerSummaryStateEnum::RUNNING => "Up 1 second".into(),
                ContainerSummaryStateEnum::EXITED => format!("Exited ({code}) 1 second ago"),
                _ => "Created".into(),
            }),
            labels: Some(c.labels.clone()),
            ports: Some(vec![]),
            ..Default::default()
        }
    }

    fn pull_progress(&self, image: String) -> ProgressStream {
        let repo = image.split(':').next().unwrap_or("").to_string();
        let tag = image.split(':').nth(1).unwrap_or("latest").to_string();
        let layer = "a1b2c3d4e5f6".to_string();
        let mut msgs = vec![
            JsonMessage::layer(&tag, format!("Pulling from library/{repo}")),
            JsonMessage::layer(&layer, "Pulling fs layer"),
            JsonMessage::layer(&layer, "Waiting"),
        ];
        for i in 1..=4 {
            msgs.push(JsonMessage::layer_progress(
                &layer,
                "Downloading",
                i * 500_000,
                2_000_000,
            ));
        }
        msgs.push(JsonMessage::layer(&layer, "Verifying Checksum"));
        msgs.push(JsonMessage::layer(&layer, "Download complete"));
        for i in 1..=2 {
            msgs.push(JsonMessage::layer_progress(
                &layer,
                "Extracting",
                i * 1_000_000,
                2_000_000,
            ));
        }
        msgs.push(JsonMessage::layer(&layer, "Pull complete"));
        msgs.push(JsonMessage::status(format!("Digest: sha256:{:064}", 7)));
        msgs.push(JsonMessage::status(format!(
            "Status: Downloaded newer image for {repo}:{tag}"
        )));
        let delay = self.pull_delay;
        stream::iter(msgs)
            .then(move |m| async move {
                // allow-sleep: the pace of a pull's progress, part of what the fake imitates.
                tokio::time::sleep(delay).await;
                Ok(m)
            })
            .boxed()
    }
}

#[async_trait]
impl Backend for Fake {
    async fn info(&self) -> Result<SystemInfo> {
        self.record("info");
        let st = self.state.lock().unwrap();
        let running = st
            .containers
            .iter()
            .filter(|c| c.status == ContainerStateStatusEnum::RUNNING)
            .count() as i64;
        Ok(SystemInfo {
            id: Some("VCH0:TEST".into()),
            name: Some("vch-test".into()),
            containers: Some(st.containers.len() as i64),
            containers_running: Some(running),
            containers_paused: Some(0),
            containers_stopped: Some(st.containers.len() as i64 - running),
            images: Some(st.images.len() as i64),
            driver: Some("vsphere".into()),
            operating_system: Some("VMware vSphere (fake)".into()),
            os_type: Some("linux".into()),
            architecture: Some("x86_64".into()),
            kernel_version: Some("6.1.0-vch".into()),
            ncpu: Some(2),
            mem_total: Some(4 << 30),
            server_version: Some("28.3.0".into()),
            logging_driver: Some("json-file".into()),
            swarm: Some(SwarmInfo {
                local_node_state: Some(LocalNodeState::INACTIVE),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn version(&self) -> Result<SystemVersion> {
        self.record("version");
        Ok(SystemVersion {
            version: Some("28.3.0".into()),
            os: Some("linux".into()),
            arch: Some("amd64".into()),
            git_commit: Some("vchtest".into()),
            go_version: Some("n/a".into()),
            kernel_version: Some("6.1.0-vch".into()),
            build_time: Some("2025-01-01T00:00:00.000000000+00:00".into()),
            platform: Some(SystemVersionPlatform { name: "VCH".into() }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".into(),
                version: "28.3.0".into(),
                details: None,
            }]),
            ..Default::default()
        })
    }

    async fn events(
        &self,
        opts: EventsOptions,
    ) -> Result<BoxStream<'static, Result<EventMessage>>> {
        self.record("events");
        let (rx, past) = {
            let history = self.history.lock().unwrap();
            let since = opts.since.and_then(|s| s.timestamp_nanos_opt());
            let past: Vec<_> = match since {
                Some(since) => history
                    .iter()
                    .filter(|e| e.time_nano.unwrap_or(0) >= since)
                    .cloned()
                    .map(Ok)
                    .collect(),
                None => vec![],
            };
            (self.events.subscribe(), past)
        };
        let filters = opts.filters;
        let live = stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((Ok(ev), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        });
        Ok(stream::iter(past)
            .chain(live)
            .filter(move |ev| {
                let keep = match ev {
                    Ok(ev) => filters
                        .exact_match("type", &ev.typ.map(|t| t.to_string()).unwrap_or_default()),
                    Err(_) => true,
                };
                std::future::ready(keep)
            })
            .boxed())
    }

    async fn container_list(&self, opts: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        self.record("container_list");
        let st = self.state.lock().unwrap();
        Ok(st
            .containers
            .iter()
            .filter(|c| opts.all || c.status == ContainerStateStatusEnum::RUNNING)
            .filter(|c| {
                opts.filters.get("name").is_empty()
                    || opts.filters.get("name").iter().any(|n| c.name.contains(n))
            })
            .filter(|c| {
                opts.filters.match_labels(
                    "label",
                    c.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )
            })
            .map(Self::summary)
            .collect())
    }

    async fn container_create(
        &self,
        opts: ContainerCreateOptions,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        self.record(format!(
            "container_create {}",
            opts.name.clone().unwrap_or_default()
        ));
        let image = Self::normalize_image(body.image.as_deref().unwrap_or(""));
        let mut st = self.state.lock().unwrap();
        if !st.images.contains(&image) {
            return Err(Error::NoSuchImage(image));
        }
        st.next += 1;
        let id = format!("{:0>12}{:052x}", st.next, st.next);
        let name = opts.name.unwrap_or_else(|| format!("fake_{}", st.next));
        if let Some(other) = st.containers.iter().find(|c| c.name == name) {
            return Err(Error::name_conflict(&name, &other.id));
        }
        let (client, process) = if body.open_stdin.unwrap_or(false) {
            let (a, b) = tokio::io::duplex(64 * 1024);
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        st.containers.push(Container {
            id: id.clone(),
            name: name.clone(),
            image,
            cmd: body.cmd.clone().unwrap_or_default(),
            tty: body.tty.unwrap_or(false),
            open_stdin: body.open_stdin.unwrap_or(false),
            auto_remove: body
                .host_config
                .as_ref()
                .and_then(|h| h.auto_remove)
                .unwrap_or(false),
            labels: body.labels.clone().unwrap_or_default(),
            status: ContainerStateStatusEnum::CREATED,
            stdin_client: client,
            stdin_process: process,
            subscribers: Vec::new(),
            logs: Vec::new(),
            exit: watch::channel(ExitState::default()).0,
            stop: Arc::new(Notify::new()),
            created: now(),
        });
        drop(st);
        self.event(EventMessageTypeEnum::CONTAINER, "create", &id, &name);
        Ok(ContainerCreateResponse {
            id,
            warnings: vec![],
        })
    }

    async fn container_inspect(&self, id: &str, _size: bool) -> Result<ContainerInspectResponse> {
        self.record(format!("container_inspect {id}"));
        let st = self.state.lock().unwrap();
        let c = &st.containers[Self::find(&st, id)?];
        let exit = *c.exit.borrow();
        Ok(ContainerInspectResponse {
            id: Some(c.id.clone()),
            name: Some(format!("/{}", c.name)),
            image: Some(format!("sha256:{:064}", 1)),
            path: c.cmd.first().cloned(),
            args: Some(c.cmd.iter().skip(1).cloned().collect()),
            state: Some(ContainerState {
                status: Some(c.status),
                running: Some(c.status == ContainerStateStatusEnum::RUNNING),
                paused: Some(false),
                restarting: Some(false),
                exit_code: Some(exit.code),
                ..Default::default()
            }),
            config: Some(ContainerConfig {
                image: Some(c.image.clone()),
                cmd: Some(c.cmd.clone()),
                tty: Some(c.tty),
                open_stdin: Some(c.open_stdin),
                labels: Some(c.labels.clone()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                auto_remove: Some(c.auto_remove),
                // docker-py's containers.run reads this unconditionally.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn container_logs(&self, id: &str, opts: LogsOptions) -> Result<LogStream> {
        self.record(format!("container_logs {id}"));
        let mut st = self.state.lock().unwrap();
        let idx = Self::find(&st, id)?;
        let c = &mut st.containers[idx];
        let wanted = move |k: StreamKind| match k {
            StreamKind::Stdout => opts.stdout,
            StreamKind::Stderr => opts.stderr,
            StreamKind::Stdin => false,
        };
        let mut past: Vec<LogChunk> = c
            .logs
            .iter()
            .filter(|l| wanted(l.kind))
            .filter(|l| opts.since.is_none_or(|s| l.timestamp > s))
            .filter(|l| opts.until.is_none_or(|u| l.timestamp <= u))
            .cloned()
            .collect();
        if let Tail::Lines(n) = opts.tail {
            let skip = past.len().saturating_sub(n as usize);
            past.drain(..skip);
        }
        let history = stream::iter(past.into_iter().map(Ok));
        let tty = c.tty;
        if opts.follow && c.status == ContainerStateStatusEnum::RUNNING {
            let (tx, rx) = mpsc::unbounded_channel();
            c.subscribers.push(tx);
            let live = stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            })
            .filter(move |chunk| std::future::ready(wanted(chunk.kind)))
            .map(|chunk| {
                Ok(LogChunk {
                    kind: chunk.kind,
                    timestamp: chrono::Utc::now(),
                    data: chunk.data,
                })
            });
            return Ok(LogStream {
                tty,
                chunks: history.chain(live).boxed(),
            });
        }
        Ok(LogStream {
            tty,
            chunks: history.boxed(),
        })
    }

    async fn container_stats(
        &self,
        id: &str,
        opts: StatsOptions,
    ) -> Result<BoxStream<'static, Result<ContainerStatsResponse>>> {
        self.record(format!("container_stats {id}"));
        let st = self.state.lock().unwrap();
        let c = &st.containers[Self::find(&st, id)?];
        let (cid, name) = (c.id.clone(), format!("/{}", c.name));
        let samples = stream::iter(0u64..)
            .then(move |i| {
                let (cid, name) = (cid.clone(), name.clone());
                async move {
                    if i > 0 {
                        // allow-sleep: the period of the stats stream (dockerd: 1 s).
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(ContainerStatsResponse {
                        id: Some(cid),
                        name: Some(name),
                        pids_stats: Some(ContainerPidsStats {
                            current: Some(1),
                            limit: None,
                        }),
                        ..Default::default()
                    })
                }
            })
            .boxed();
        Ok(if opts.stream {
            samples
        } else {
            samples.take(1).boxed()
        })
    }

    async fn container_start(&self, id: &str, _detach_keys: Option<String>) -> Result<()> {
        self.record(format!("container_start {id}"));
        let mut st = self.state.lock().unwrap();
        let idx = Self::find(&st, id)?;
        let c = &mut st.containers[idx];
        if c.status == ContainerStateStatusEnum::RUNNING {
            return Err(Error::NotModified("container already started".into()));
        }
        c.status = ContainerStateStatusEnum::RUNNING;
        c.exit.send_modify(|e| e.running = true);
        let (cid, name, cmd, stop) = (c.id.clone(), c.name.clone(), c.cmd.clone(), c.stop.clone());
        let stdin = c.stdin_process.take();
        drop(st);
        self.event(EventMessageTypeEnum::CONTAINER, "start", &cid, &name);
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(me.run(cid, cmd, stdin, stop));
        }
        Ok(())
    }

    async fn container_stop(&self, id: &str, _opts: StopOptions) -> Result<()> {
        self.record(format!("container_stop {id}"));
        let st = self.state.lock().unwrap();
        let c = &st.containers[Self::find(&st, id)?];
        if c.status != ContainerStateStatusEnum::RUNNING {
            return Err(Error::NotModified("container already stopped".into()));
        }
        c.stop.notify_one();
        Ok(())
    }

    async fn container_kill(&self, id: &str, _signal: Option<String>) -> Result<()> {
        self.record(format!("container_kill {id}"));
        let st = self.state.lock().unwrap();
        let c = &st.containers[Self::find(&st, id)?];
        if c.status != ContainerStateStatusEnum::RUNNING {
            return Err(Error::not_running(&c.id));
        }
        c.stop.notify_one();
        Ok(())
    }

    async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.record(format!("container_resize {id} {height}x{width}"));
        let st = self.state.lock().unwrap();
        Self::find(&st, id)?;
        Ok(())
    }

    async fn container_attach(&self, id: &str, opts: AttachOptions) -> Result<AttachStreams> {
        self.record(format!("container_attach {id}"));
        let mut st = self.state.lock().unwrap();
        let idx = Self::find(&st, id)?;
        let c = &mut st.containers[idx];
        let stdin = if opts.stdin {
            c.stdin_client.take().map(|s| {
                Box::pin(StdinHandle {
                    pipe: Some(s),
                    fake: self.me.clone(),
                    container: c.id.clone(),
                    closed: false,
                }) as Pin<Box<dyn tokio::io::AsyncWrite + Send>>
            })
        } else {
            None
        };
        let tty = c.tty;
        let replay: Vec<_> = if opts.logs {
            c.logs
                .iter()
                .map(|l| {
                    Ok(OutputChunk {
                        kind: l.kind,
                        data: l.data.clone(),
                    })
                })
                .collect()
        } else {
            vec![]
        };
        let finished = c.status == ContainerStateStatusEnum::EXITED;
        let live = if opts.stream && !finished {
            let (tx, rx) = mpsc::unbounded_channel();
            c.subscribers.push(tx);
            let (out, err) = (opts.stdout, opts.stderr);
            stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
                .filter(move |c| {
                    std::future::ready(match c.kind {
                        StreamKind::Stdout => out,
                        StreamKind::Stderr => err,
                        StreamKind::Stdin => false,
                    })
                })
                .map(Ok)
                .boxed()
        } else {
            stream::empty().boxed()
        };
        Ok(AttachStreams {
            tty,
            stdin,
            output: stream::iter(replay).chain(live).boxed(),
            detach_keys: None,
        })
    }

    async fn container_wait(&self, id: &str, condition: WaitCondition) -> Result<WaitFuture> {
        self.record(format!("container_wait {id}"));
        let st = self.state.lock().unwrap();
        let c = &st.containers[Self::find(&st, id)?];
        let mut rx = c.exit.subscribe();
        let start = *rx.borrow();
        Ok(Box::pin(async move {
            let done = |e: &ExitState| match condition {
                WaitCondition::NotRunning => !e.running,
                WaitCondition::NextExit => e.exits > start.exits,
                WaitCondition::Removed => e.removed,
            };
            let waited = rx.wait_for(done).await.map(|e| *e);
            // Err: the container is gone (removed); its last state is final.
            let e = waited.unwrap_or_else(|_| *rx.borrow());
            Ok(ContainerWaitResponse {
                status_code: e.code,
                error: None,
            })
        }))
    }

    async fn container_remove(&self, id: &str, opts: ContainerRemoveOptions) -> Result<()> {
        self.record(format!("container_remove {id}"));
        let mut st = self.state.lock().unwrap();
        let idx = Self::find(&st, id)?;
        let c = &st.containers[idx];
        if c.status == ContainerStateStatusEnum::RUNNING && !opts.force {
            return Err(Error::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                c.name
            )));
        }
        c.stop.notify_one();
        let c = st.containers.remove(idx);
        c.exit.send_modify(|e| e.removed = true);
        Ok(())
    }

    async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat> {
        self.record(format!("container_archive_stat {id} {path}"));
        let st = self.state.lock().unwrap();
        let c = &st.containers[Self::find(&st, id)?];
        if path.starts_with("/missing") {
            return Err(Error::NotFound(format!(
                "Could not find the file {path} in container {}",
                c.name
            )));
        }
        let dir = path == "/" || path.ends_with('/') || path == "/tmp";
        Ok(PathStat {
            name: path
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string(),
            size: if dir { 4096 } else { 7 },
            mode: if dir { (1 << 31) | 0o755 } else { 0o644 },
            mtime: "2025-01-01T00:00:00Z".into(),
            link_target: String::new(),
        })
    }

    async fn container_archive_get(&self, id: &str, path: &str) -> Result<(PathStat, ByteStream)> {
        let stat = self.container_archive_stat(id, path).await?;
        Ok((
            stat,
            stream::iter([
                Ok(Bytes::from_static(b"TAR")),
                Ok(Bytes::from_static(b"DATA")),
            ])
            .boxed(),
        ))
    }

    async fn container_archive_put(
        &self,
        id: &str,
        opts: PutArchiveOptions,
        mut body: ByteStream,
    ) -> Result<()> {
        {
            let st = self.state.lock().unwrap();
            Self::find(&st, id)?;
        }
        let mut n = 0;
        while let Some(chunk) = body.next().await {
            n += chunk?.len();
        }
        self.record(format!("container_archive_put {id} {} {n}", opts.path));
        Ok(())
    }

    async fn exec_create(&self, container: &str, config: ExecConfig) -> Result<IdResponse> {
        self.record(format!("exec_create {container}"));
        let mut st = self.state.lock().unwrap();
        let idx = Self::find(&st, container)?;
        let c = &st.containers[idx];
        if c.status != ContainerStateStatusEnum::RUNNING {
            return Err(Error::not_running(&c.id));
        }
        let cid = c.id.clone();
        st.next += 1;
        let id = format!("exec{:060x}", st.next);
        st.execs.insert(
            id.clone(),
            Exec {
                container: cid,
                cmd: config.cmd.unwrap_or_default(),
                exit_code: None,
                running: false,
            },
        );
        Ok(IdResponse { id })
    }

    async fn exec_start(&self, id: &str, config: ExecStartConfig) -> Result<AttachStreams> {
        let fake = self;
        fake.record(format!("exec_start {id}"));
        let (cmd, tty) = {
            let mut st = fake.state.lock().unwrap();
            let e = st
                .execs
                .get_mut(id)
                .ok_or_else(|| Error::NoSuchExec(id.into()))?;
            e.running = true;
            (e.cmd.clone(), config.tty.unwrap_or(false))
        };
        let (code, chunk) = match cmd.first().map(String::as_str) {
            Some("echo") => (
                0,
                Some(OutputChunk::stdout(format!("{}\n", cmd[1..].join(" ")))),
            ),
            Some("warn") => (
                0,
                Some(OutputChunk::stderr(format!("{}\n", cmd[1..].join(" ")))),
            ),
            Some("sh") if cmd.len() == 3 && cmd[2].starts_with("exit ") => {
                (cmd[2][5..].trim().parse().unwrap_or(1), None)
            }
            _ => (127, Some(OutputChunk::stderr("command not found\n"))),
        };
        let fake2 = self.me.clone();
        let id2 = id.to_string();
        // Record the exit code before the output ends: the CLI inspects right after.
        let finish = stream::once(async move {
            if let Some(fake) = fake2.upgrade() {
                let mut st = fake.state.lock().unwrap();
                if let Some(e) = st.execs.get_mut(&id2) {
                    e.running = false;
                    e.exit_code = Some(code);
                }
            }
            None
        });
        let output = stream::iter(chunk.map(Some))
            .chain(finish)
            .filter_map(|c| std::future::ready(c.map(Ok)))
            .boxed();
        Ok(AttachStreams {
            tty,
            stdin: None,
            output,
            detach_keys: None,
        })
    }

    async fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        self.record(format!("exec_inspect {id}"));
        let st = self.state.lock().unwrap();
        let e = st
            .execs
            .get(id)
            .ok_or_else(|| Error::NoSuchExec(id.into()))?;
        Ok(ExecInspectResponse {
            id: Some(id.into()),
            container_id: Some(e.container.clone()),
            running: Some(e.running),
            exit_code: e.exit_code,
            ..Default::default()
        })
    }

    async fn image_list(&self, _opts: ImageListOptions) -> Result<Vec<ImageSummary>> {
        self.record("image_list");
        let st = self.state.lock().unwrap();
        Ok(st
            .images
            .iter()
            .enumerate()
            .map(|(i, name)| ImageSummary {
                id: format!("sha256:{:064}", i + 1),
                repo_tags: vec![name.clone()],
                created: 1_700_000_000,
                size: 4_000_000,
                containers: -1,
                shared_size: -1,
                ..Default::default()
            })
            .collect())
    }

    async fn image_pull(&self, opts: PullOptions) -> Result<ProgressStream> {
        self.record(format!("image_pull {}", opts.from_image));
        let image = match &opts.tag {
            Some(t) => Self::normalize_image(&format!("{}:{t}", opts.from_image)),
            None => Self::normalize_image(&opts.from_image),
        };
        if image.starts_with("flaky") {
            // Fails after the headers are gone: the error must come in-stream.
            return Ok(stream::iter([
                Ok(JsonMessage::layer("latest", "Pulling from library/flaky")),
                Err(Error::internal("unexpected EOF while downloading layer")),
                Ok(JsonMessage::status("never sent")),
            ])
            .boxed());
        }
        if image.starts_with("nonexistent") {
            let repo = image.split(':').next().unwrap_or("");
            return Ok(stream::iter([Err(Error::NotFound(format!(
                "pull access denied for {repo}, repository does not exist or may require 'docker login'"
            )))])
            .boxed());
        }
        let progress = self.pull_progress(image.clone());
        // The image exists once the whole stream has been sent.
        let me = self.me.clone();
        let done = stream::once(async move {
            if let Some(fake) = me.upgrade() {
                let mut st = fake.state.lock().unwrap();
                if !st.images.contains(&image) {
                    st.images.push(image);
                }
            }
        })
        .filter_map(|()| std::future::ready(None));
        Ok(progress.chain(done).boxed())
    }

    async fn image_inspect(&self, name: &str, _manifests: bool) -> Result<ImageInspect> {
        self.record(format!("image_inspect {name}"));
        let image = Self::normalize_image(name);
        let st = self.state.lock().unwrap();
        if !st.images.contains(&image) {
            return Err(Error::NoSuchImage(name.into()));
        }
        Ok(ImageInspect {
            id: Some(format!("sha256:{:064}", 1)),
            repo_tags: Some(vec![image]),
            os: Some("linux".into()),
            architecture: Some("amd64".into()),
            ..Default::default()
        })
    }

    async fn volume_list(&self, filters: Filters) -> Result<VolumeListResponse> {
        self.record(format!("volume_list {}", filters.to_json()));
        Ok(VolumeListResponse {
            volumes: Some(vec![]),
            warnings: Some(vec![]),
        })
    }
}

/// The stdin given to an attach. `shutdown()` closes the container's stdin (the client
/// closed its side); dropping it without that (detach, disconnect) hands the pipe back
/// to the container for the next attach, as dockerd does.
struct StdinHandle {
    pipe: Option<DuplexStream>,
    fake: Weak<Fake>,
    container: String,
    closed: bool,
}

impl tokio::io::AsyncWrite for StdinHandle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.pipe.as_mut() {
            Some(p) => Pin::new(p).poll_write(cx, buf),
            None => std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.pipe.as_mut() {
            Some(p) => Pin::new(p).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.closed = true;
        match self.pipe.as_mut() {
            Some(p) => Pin::new(p).poll_shutdown(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
}

impl Drop for StdinHandle {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if let (Some(pipe), Some(fake)) = (self.pipe.take(), self.fake.upgrade()) {
            let mut st = fake.state.lock().unwrap();
            if let Ok(idx) = Fake::find(&st, &self.container) {
                st.containers[idx].stdin_client = Some(pipe);
            }
        }
    }
}
