//! Benchmark harness for the front end (see docker-api/bench.sh).
//!
//!     bench_server serve   [ADDR]            serve a trivial backend on loopback TCP
//!     bench_server latency ADDR [N] [PATH]   N sequential keep-alive requests; prints
//!                                            p50/p90/p99 round-trip latency as JSON
//!
//! The backend answers `GET /containers/json` with three fixed containers and does no
//! work, so a request's round trip is the front end's added latency plus loopback TCP
//! and the client (an upper bound of what the front end adds).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_api::models::{ContainerSummary, ContainerSummaryStateEnum};
use docker_api::options::ContainerListOptions;
use docker_api::{async_trait, Backend, Listener, Result, Server};

struct Trivial;

#[async_trait]
impl Backend for Trivial {
    async fn container_list(&self, _opts: ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        Ok((0..3)
            .map(|i| ContainerSummary {
                id: Some(format!("{i:064}")),
                names: Some(vec![format!("/bench{i}")]),
                image: Some("busybox".into()),
                command: Some("sleep".into()),
                created: Some(1_700_000_000),
                state: Some(ContainerSummaryStateEnum::RUNNING),
                status: Some("Up 1 hour".into()),
                ..Default::default()
            })
            .collect())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(args.get(1).map(String::as_str).unwrap_or("127.0.0.1:23750")),
        Some("latency") => {
            let addr = args.get(1).expect("latency ADDR [N] [PATH]");
            let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20_000);
            let path = args
                .get(3)
                .map(String::as_str)
                .unwrap_or("/v1.50/containers/json");
            latency(addr, n, path);
        }
        _ => {
            eprintln!("usage: bench_server serve [ADDR] | latency ADDR [N] [PATH]");
            std::process::exit(2);
        }
    }
}

fn serve(addr: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let addr = addr.parse().expect("address");
        let server = Server::builder()
            .backend(Arc::new(Trivial))
            .listen(Listener::Tcp { addr, force: false })
            .bind()
            .await
            .expect("bind");
        eprintln!("listening on {:?}", server.local_addrs());
        server
            .serve(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("serve");
    });
}

/// Sequential requests on one keep-alive connection, blocking I/O: measures one
/// request's round trip without client-side batching.
fn latency(addr: &str, n: usize, path: &str) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut buf = vec![0u8; 64 * 1024];
    let mut one = |s: &mut TcpStream| -> Duration {
        let t = Instant::now();
        s.write_all(req.as_bytes()).expect("write");
        let mut got = 0;
        loop {
            let r = s.read(&mut buf[got..]).expect("read");
            assert!(r > 0, "server closed the connection");
            got += r;
            if let Some(end) = complete(&buf[..got]) {
                assert_eq!(end, got, "pipelining is not expected");
                return t.elapsed();
            }
        }
    };
    for _ in 0..n.min(2000) {
        one(&mut s); // warm-up
    }
    let mut samples: Vec<Duration> = (0..n).map(|_| one(&mut s)).collect();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "{{\"path\":\"{path}\",\"requests\":{n},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1}}}",
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
}

/// Length of the first complete response in `b` (Content-Length framed), if complete.
fn complete(b: &[u8]) -> Option<usize> {
    let head_end = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&b[..head_end]).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (b.len() >= head_end + len).then_some(head_end + len)
}
