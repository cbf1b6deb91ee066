//! Stdin and TTY through the control channel of a container VM that really runs: this
//! test plays the VCH's end of serial port 1 (a TCP listener the VM connects to) and
//! reads the container log from the datastore. Needs root; skipped otherwise.

mod common;

use common::{skip, Env};
use container_vm::channel::{decode, resize_payload, ExecRequest, Frame, Kind};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The VCH's end of one VM's control channel.
struct Port {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Port {
    async fn send(&mut self, f: Frame) {
        self.sock.write_all(&f.encode()).await.unwrap();
    }

    async fn next(&mut self) -> Frame {
        loop {
            let mut frames = decode(&mut self.buf);
            if !frames.is_empty() {
                let f = frames.remove(0);
                // Put back what came with it.
                let mut rest: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
                rest.extend_from_slice(&self.buf);
                self.buf = rest;
                return f;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(30), self.sock.read(&mut chunk))
                .await
                .expect("no frame from the tether")
                .unwrap();
            assert!(n > 0, "the tether hung up");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Polls the container log until it holds `needle`.
async fn log_until(env: &Env, name: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let raw = env
            .client
            .download_bytes("DC0", "datastore1", &format!("{name}/container.log"), None)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw).to_string();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in the log: {text}"
        );
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_main_process_and_tty_exec_session() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("tcp://{}", listener.local_addr().unwrap());
    let name = "ttyvm";
    let vm = env
        .container_with(
            name,
            &[
                "sh",
                "-c",
                "stty size; tty; read line; stty size; echo got $line; exit 7",
            ],
            128,
            serde_json::json!({"tty": true, "open_stdin": true, "console_size": [27, 91]}),
            vec![],
            Some(uri),
        )
        .await;
    env.client.power_on(&vm).await.unwrap();
    let (sock, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("the VM did not connect its serial port")
        .unwrap();
    let mut port = Port {
        sock,
        buf: Vec::new(),
    };
    port.send(Frame::new(Kind::Who, 0, Vec::new())).await;
    assert_eq!(port.next().await.kind, Kind::Hello);

    // The initial window size and the terminal, as the process sees them.
    let log = log_until(&env, name, "/dev/pts/").await;
    assert!(log.contains("27 91"), "{log}");

    // An exec session on its own terminal, with its own size.
    let req = ExecRequest {
        cmd: vec!["sh".into(), "-c".into(), "stty size; tty".into()],
        tty: true,
        console_size: Some([12, 34]),
        ..Default::default()
    };
    port.send(Frame::new(Kind::Exec, 5, serde_json::to_vec(&req).unwrap()))
        .await;
    let mut out = Vec::new();
    let code = loop {
        let f = port.next().await;
        match f.kind {
            Kind::Out if f.session == 5 => {
                // One stream on a TTY: stdout.
                assert_eq!(f.payload[0], 1);
                out.extend_from_slice(&f.payload[1..]);
            }
            Kind::Exit if f.session == 5 => break String::from_utf8_lossy(&f.payload).to_string(),
            _ => {}
        }
    };
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("12 34\r\n/dev/pts/"), "{out}");
    assert_eq!(code.trim(), "0");

    // Resize the main process's terminal, then give it its line.
    port.send(Frame::new(Kind::Resize, 0, resize_payload(50, 132)))
        .await;
    port.send(Frame::new(Kind::Stdin, 0, b"hello\r".to_vec()))
        .await;
    env.wait_off(&vm).await;
    let (out, exit) = env.log(name).await;
    assert!(out.contains("50 132"), "{out}");
    assert!(out.contains("got hello"), "{out}");
    assert_eq!(exit["exit_code"], 7);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_stdin_sent_before_the_process_starts_arrives_then_eof() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("tcp://{}", listener.local_addr().unwrap());
    let name = "pipevm";
    let vm = env
        .container_with(
            name,
            &["sh", "-c", "wc -c; exit 4"],
            128,
            serde_json::json!({"open_stdin": true, "stdin_once": true}),
            vec![],
            Some(uri),
        )
        .await;
    env.client.power_on(&vm).await.unwrap();
    let (sock, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("the VM did not connect its serial port")
        .unwrap();
    let mut port = Port {
        sock,
        buf: Vec::new(),
    };
    // Right away, with no Hello awaited: the tether may not have started the process yet.
    let data = vec![b'z'; 700_000];
    for chunk in data.chunks(32 * 1024) {
        port.send(Frame::new(Kind::Stdin, 0, chunk.to_vec())).await;
    }
    port.send(Frame::new(Kind::StdinClose, 0, Vec::new())).await;
    // Every byte is acknowledged once written into the process's stdin (the VCH's window).
    let mut acked = 0;
    while acked < data.len() {
        let f = port.next().await;
        if f.kind == Kind::StdinAck {
            assert_eq!(f.session, 0);
            acked += u32::from_be_bytes(f.payload[..4].try_into().unwrap()) as usize;
        }
    }
    assert_eq!(acked, data.len());
    env.wait_off(&vm).await;
    let (out, exit) = env.log(name).await;
    assert_eq!(out.trim(), "700000");
    assert_eq!(exit["exit_code"], 4);
    env.done().await;
}
