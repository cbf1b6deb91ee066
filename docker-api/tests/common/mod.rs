//! Test harness: a server on a unix socket and a loopback TCP port backed by the fake,
//! a raw HTTP/1.1 client for edge cases, and a runner for the real docker CLI.
#![allow(dead_code)]

pub mod fake;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_api::{Backend, Listener, LocalAddr, Server, ServerBuilder, ServerError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use fake::Fake;

pub const DOCKER: &str = "/usr/local/bin/docker";

/// A fresh directory under /tmp (short: unix socket paths are limited to 108 bytes).
pub fn tmpdir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dapi-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct TestServer {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub tcp: SocketAddr,
    pub fake: Arc<Fake>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

pub async fn start() -> TestServer {
    start_with(|b| b).await
}

/// Starts a server with the fake backend; `tweak` may change the builder.
pub async fn start_with(tweak: impl FnOnce(ServerBuilder) -> ServerBuilder) -> TestServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOCKER_API_TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let dir = tmpdir("srv");
    let sock = dir.join("docker.sock");
    let fake = Fake::new();
    let backend: Arc<dyn Backend> = fake.clone();
    let builder = Server::builder()
        .backend(backend)
        .listen(Listener::Unix(sock.clone()))
        .listen(Listener::Tcp {
            addr: "127.0.0.1:0".parse().unwrap(),
            force: false,
        });
    let server = tweak(builder).bind().await.expect("bind");
    let tcp = server
        .local_addrs()
        .into_iter()
        .find_map(|a| match a {
            LocalAddr::Tcp(a) => Some(a),
            _ => None,
        })
        .expect("tcp addr");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    TestServer {
        dir,
        sock,
        tcp,
        fake,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestServer {
    /// Triggers shutdown and waits for `serve` to return; returns how long that took.
    pub async fn stop(&mut self) -> Duration {
        let t = Instant::now();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("serve");
        }
        t.elapsed()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Runs the docker CLI against this server; `None` (after printing why) when the
    /// CLI is not installed.
    pub async fn docker(&self, args: &[&str]) -> Option<Output> {
        self.docker_with_stdin(args, None).await
    }

    pub async fn docker_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Option<Output> {
        let host = self.host();
        let mut full = vec!["-H", host.as_str()];
        full.extend_from_slice(args);
        run_docker(&self.dir, &full, stdin).await
    }

    pub async fn raw(&self) -> Raw {
        Raw::unix(&self.sock).await
    }

    /// One request over a fresh unix connection (`Connection: close`).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut raw = self.raw().await;
        raw.send_request(method, path, headers, body, true).await;
        if method == "HEAD" {
            let head = raw.read_head().await;
            return Response {
                head,
                body: Vec::new(),
            };
        }
        raw.read_response().await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"").await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one way a test here declines to run: under `CI=true` it fails with `why` (a green
/// CI that tested nothing would hide it); elsewhere it prints "SKIPPED <test>: <why>" and
/// the caller returns.
pub fn cannot_run(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    assert!(!ci, "{test} cannot run under CI=true: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

/// Is the docker CLI there? Reported through [`cannot_run`] when it is not.
pub fn have_docker() -> bool {
    let have = Path::new(DOCKER).exists();
    if !have {
        cannot_run(&format!("the docker CLI is not installed at {DOCKER}"));
    }
    have
}

/// Runs the docker CLI with a private config dir, no environment overrides and a timeout.
pub async fn run_docker(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Option<Output> {
    if !have_docker() {
        return None;
    }
    let mut cmd = tokio::process::Command::new(DOCKER);
    cmd.args(args)
        .env("DOCKER_CONFIG", dir.join("cli-config"))
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_API_VERSION")
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn docker");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        tokio::spawn(async move {
            let _ = w.write_all(&data).await;
            // Dropping `w` closes the CLI's stdin: it half-closes the attach.
        });
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("docker {args:?} timed out"))
        .expect("docker output");
    Some(out)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- raw HTTP client -----------------------------------------------------------------

pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// A raw HTTP/1.1 connection that exposes exact bytes.
pub struct Raw {
    pub io: Box<dyn Conn>,
    buf: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub raw: String,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", text(&self.body)))
    }
    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or("").to_string()
    }
    pub fn text(&self) -> String {
        text(&self.body)
    }
}

impl Raw {
    pub async fn unix(path: &Path) -> Raw {
        let s = tokio::net::UnixStream::connect(path)
            .await
            .expect("connect unix");
        Raw::new(Box::new(s))
    }

    pub async fn tcp(addr: SocketAddr) -> Raw {
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect tcp");
        Raw::new(Box::new(s))
    }

    pub fn new(io: Box<dyn Conn>) -> Raw {
        Raw {
            io,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    pub async fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        close: bool,
    ) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if close {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes).await;
    }

    async fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(30), self.io.read(&mut tmp))
            .await
            .expect("read timed out")
            .unwrap_or(0);
        self.buf.extend_from_slice(&tmp[..n]);
        n > 0
    }

    pub async fn read_head(&mut self) -> Head {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let raw = String::from_utf8_lossy(&self.buf[..pos + 4]).into_owned();
                self.buf.drain(..pos + 4);
                let mut lines = raw.split("\r\n");
                let status_line = lines.next().unwrap_or("").to_string();
                let status = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let headers = lines
                    .filter(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                return Head {
                    status,
                    status_line,
                    headers,
                    raw,
                };
            }
            assert!(
                self.fill().await,
                "EOF before response head: {:?}",
                text(&self.buf)
            );
        }
    }

    /// Reads exactly `n` bytes.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "EOF after {} of {n} bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Reads until EOF.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// One chunk of a chunked body; `None` at the terminating zero chunk (or EOF).
    pub async fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self.read_line().await?;
        let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
        if size == 0 {
            let _ = self.read_line().await;
            return None;
        }
        let data = self.read_exact(size).await;
        let _ = self.read_exact(2).await;
        Some(data)
    }

    /// Reads a body as framed by `head`.
    pub async fn read_body(&mut self, head: &Head) -> Vec<u8> {
        if head.status == 204 || head.status == 304 {
            return Vec::new();
        }
        if let Some(len) = head.header("content-length").and_then(|l| l.parse().ok()) {
            return self.read_exact(len).await;
        }
        if head
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            let mut out = Vec::new();
            while let Some(c) = self.read_chunk().await {
                out.extend_from_slice(&c);
            }
            return out;
        }
        self.read_to_end().await
    }

    pub async fn read_response(&mut self) -> Response {
        let head = self.read_head().await;
        let body = self.read_body(&head).await;
        Response { head, body }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
