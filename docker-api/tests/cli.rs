//! The real docker CLI against the front end (with the in-test fake backend). Each test
//! is skipped, with a printed reason, when /usr/local/bin/docker is absent (a failure
//! under CI=true).

mod common;

use common::*;

fn stdout(o: &std::process::Output) -> String {
    text(&o.stdout)
}
fn stderr(o: &std::process::Output) -> String {
    text(&o.stderr)
}

macro_rules! docker {
    ($srv:expr, $($arg:expr),+ $(,)?) => {
        match $srv.docker(&[$($arg),+]).await {
            Some(o) => o,
            None => return,
        }
    };
}

#[tokio::test]
async fn docker_version_and_info_handshake() {
    let srv = start().await;
    let o = docker!(srv, "version");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Server:"), "{out}");
    assert!(
        out.contains("API version:      1.50 (minimum version 1.24)"),
        "{out}"
    );
    let o = docker!(
        srv,
        "version",
        "--format",
        "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.Version}} {{.Server.Os}}"
    );
    assert_eq!(stdout(&o).trim(), "1.50 1.50 28.3.0 linux");

    let o = docker!(srv, "info");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Storage Driver: vsphere"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("Swarm: inactive"), "{}", stdout(&o));
    let o = docker!(srv, "info", "--format", "{{.Name}} {{.OSType}} {{.NCPU}}");
    assert_eq!(stdout(&o).trim(), "vch-test linux 2");
}

#[tokio::test]
async fn docker_over_loopback_tcp() {
    let srv = start().await;
    let host = format!("tcp://{}", srv.tcp);
    let Some(o) = run_docker(
        &srv.dir,
        &["-H", &host, "version", "--format", "{{.Server.APIVersion}}"],
        None,
    )
    .await
    else {
        return;
    };
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "1.50");
}

#[tokio::test]
async fn docker_run_orders_calls_like_dockerd_expects() {
    let srv = start().await;
    let o = docker!(srv, "run", "--name", "r1", "busybox", "echo", "hello", "world");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello world\n");
    // create, attach, wait (headers received), then start: the only order in which the
    // output and the exit status can't be missed.
    let calls: Vec<String> = srv
        .fake
        .calls()
        .into_iter()
        .filter(|c| !c.starts_with("container_inspect") && !c.starts_with("info"))
        .map(|c| c.split(' ').next().unwrap().to_string())
        .collect();
    let pos = |name: &str| {
        calls
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("{name} in {calls:?}"))
    };
    assert!(
        pos("container_create") < pos("container_attach"),
        "{calls:?}"
    );
    assert!(pos("container_attach") < pos("container_wait"), "{calls:?}");
    assert!(pos("container_wait") < pos("container_start"), "{calls:?}");

    let o = docker!(srv, "logs", "r1");
    assert_eq!(stdout(&o), "hello world\n");
    let o = docker!(srv, "logs", "-t", "r1");
    assert!(stdout(&o).ends_with("Z hello world\n"), "{}", stdout(&o));
    let o = docker!(
        srv,
        "ps",
        "-a",
        "--filter",
        "name=r1",
        "--format",
        "{{.Names}} {{.Status}}"
    );
    assert_eq!(stdout(&o).trim(), "r1 Exited (0) 1 second ago");
}

#[tokio::test]
async fn docker_run_propagates_exit_code_and_stderr() {
    let srv = start().await;
    let o = docker!(srv, "run", "busybox", "sh", "-c", "exit 3");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = docker!(srv, "run", "busybox", "warn", "oops");
    assert!(o.status.success());
    assert_eq!(
        (stdout(&o), stderr(&o)),
        (String::new(), "oops\n".to_string())
    );
}

#[tokio::test]
async fn docker_run_stdin_half_close() {
    let srv = start().await;
    let Some(o) = srv
        .docker_with_stdin(&["run", "-i", "busybox", "cat"], Some(b"from stdin\n"))
        .await
    else {
        return;
    };
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from stdin\n");
}

#[tokio::test]
async fn docker_run_tty_and_rm() {
    let srv = start().await;
    let o = docker!(srv, "run", "-t", "busybox", "echo", "tty");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "tty\n");
    let o = docker!(srv, "run", "--rm", "--name", "gone", "busybox", "echo", "bye");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "bye\n");
    let o = docker!(srv, "ps", "-a", "--format", "{{.Names}}");
    assert!(!stdout(&o).contains("gone"), "{}", stdout(&o));
}

#[tokio::test]
async fn docker_run_detached_then_exec() {
    let srv = start().await;
    let o = docker!(srv, "run", "-d", "--name", "bg", "busybox", "sleep");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim().len(), 64);
    let o = docker!(srv, "exec", "bg", "echo", "inside");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "inside\n");
    let o = docker!(srv, "exec", "bg", "sh", "-c", "exit 5");
    assert_eq!(o.status.code(), Some(5));
    let o = docker!(srv, "exec", "-t", "bg", "echo", "tty");
    assert_eq!(stdout(&o), "tty\n");
    let o = docker!(srv, "rm", "bg");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("container is running"),
        "{}",
        stderr(&o)
    );
    let o = docker!(srv, "rm", "-f", "bg");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test]
async fn docker_pull_renders_progress() {
    let srv = start().await;
    let o = docker!(srv, "pull", "alpine");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "latest: Pulling from library/alpine",
        "a1b2c3d4e5f6: Pulling fs layer",
        "a1b2c3d4e5f6: Pull complete",
        "Digest: sha256:",
        "Status: Downloaded newer image for alpine:latest",
        "docker.io/library/alpine:latest",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // On a terminal the CLI draws progress bars from progressDetail.
    let cmd = format!(
        "DOCKER_CONFIG={} {DOCKER} -H {} pull busybox:1.36",
        srv.dir.join("cli-config").display(),
        srv.host()
    );
    let o = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .await
        .expect("script");
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    // Terminal rendering: each layer line is redrawn in place (cursor up, clear line)
    // with the byte counts from progressDetail.
    assert!(out.contains("Downloading      1MB/2MB"), "{out:?}");
    assert!(out.contains("Extracting      2MB/2MB"), "{out:?}");
    assert!(
        out.contains("\u{1b}[1A\u{1b}[2K"),
        "no in-place redraw in {out:?}"
    );
}

#[tokio::test]
async fn docker_run_pulls_a_missing_image() {
    let srv = start().await;
    let o = docker!(srv, "run", "alpine:3", "echo", "pulled");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Unable to find image 'alpine:3' locally"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "pulled\n");
    let o = docker!(srv, "pull", "nonexistent");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("pull access denied for nonexistent, repository does not exist"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn docker_error_texts() {
    let srv = start().await;
    let o = docker!(srv, "rm", "nope");
    assert_eq!(
        stderr(&o).trim(),
        "Error response from daemon: No such container: nope"
    );
    let o = docker!(srv, "create", "--name", "dup", "busybox");
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let o = docker!(srv, "create", "--name", "dup", "busybox");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("Conflict. The container name \"/dup\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")),
        "{}",
        stderr(&o)
    );
    let o = docker!(srv, "swarm", "init");
    assert!(
        stderr(&o).contains("swarm is not supported by this VCH"),
        "{}",
        stderr(&o)
    );
    let o = docker!(srv, "plugin", "ls");
    assert!(
        stderr(&o).contains("plugins is not supported by this VCH"),
        "{}",
        stderr(&o)
    );
    let o = docker!(srv, "network", "ls");
    assert!(
        stderr(&o).contains("networks is not supported by this VCH"),
        "{}",
        stderr(&o)
    );
    let o = docker!(srv, "ps", "--filter", "bogus=1");
    assert!(
        stderr(&o).contains("invalid filter 'bogus'"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn docker_attach_logs_follow_and_wait() {
    let srv = start().await;
    let o = docker!(srv, "run", "-d", "-i", "--name", "cat", "busybox", "cat");
    assert!(o.status.success(), "{}", stderr(&o));
    // Follow the logs while another client feeds the container's stdin.
    let host = srv.host();
    let dir = srv.dir.clone();
    let follow =
        tokio::spawn(
            async move { run_docker(&dir, &["-H", &host, "logs", "-f", "cat"], None).await },
        );
    let host = srv.host();
    let dir = srv.dir.clone();
    let waiting =
        tokio::spawn(async move { run_docker(&dir, &["-H", &host, "wait", "cat"], None).await });
    // Both clients follow the container before it gets input and ends.
    srv.fake.wait_for_call("container_logs").await;
    srv.fake.wait_for_call("container_wait").await;
    let Some(o) = srv
        .docker_with_stdin(&["attach", "cat"], Some(b"attached\n"))
        .await
    else {
        return;
    };
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "attached\n");
    // Closing stdin ended `cat`: the followed logs and the wait end too.
    let logs = follow.await.unwrap().unwrap();
    assert_eq!(stdout(&logs), "attached\n", "{}", stderr(&logs));
    let w = waiting.await.unwrap().unwrap();
    assert_eq!(stdout(&w).trim(), "0", "{}", stderr(&w));
}

#[tokio::test]
async fn docker_start_attach_and_stop() {
    let srv = start().await;
    let o = docker!(srv, "create", "--name", "later", "busybox", "sh", "-c", "exit 4");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = docker!(srv, "start", "-a", "later");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let o = docker!(srv, "run", "-d", "--name", "long", "busybox", "sleep");
    assert!(o.status.success());
    let o = docker!(srv, "stop", "long");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "long");
    // Already stopped: dockerd's 304, which the CLI takes as success.
    let o = docker!(srv, "stop", "long");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = docker!(srv, "kill", "long");
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
}

#[tokio::test]
async fn docker_events_and_stats() {
    let srv = start().await;
    if !have_docker() {
        return;
    }
    // --since: events from the test's start are replayed, so a slow CLI start can't
    // miss them; --until ends the stream.
    let since = chrono::Utc::now().timestamp().to_string();
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .timestamp()
        .to_string();
    let host = srv.host();
    let dir = srv.dir.clone();
    let events = tokio::spawn(async move {
        run_docker(
            &dir,
            &[
                "-H",
                &host,
                "events",
                "--since",
                &since,
                "--until",
                &until,
                "--filter",
                "type=container",
                "--format",
                "{{.Action}} {{.Actor.Attributes.name}}",
            ],
            None,
        )
        .await
    });
    srv.fake.wait_for_call("events").await;
    let o = docker!(srv, "run", "--name", "ev", "busybox", "echo", "x");
    assert!(o.status.success(), "{}", stderr(&o));
    let Some(e) = events.await.unwrap() else {
        return;
    };
    assert!(e.status.success(), "{}", stderr(&e));
    let lines: Vec<_> = stdout(&e).lines().map(str::to_string).collect();
    assert_eq!(lines, ["create ev", "start ev", "die ev"], "{}", stderr(&e));

    let o = docker!(srv, "run", "-d", "--name", "st", "busybox", "sleep");
    assert!(o.status.success());
    let o = docker!(
        srv,
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "st"
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "st 1");
}

#[tokio::test]
async fn docker_cp_both_ways() {
    let srv = start().await;
    let o = docker!(srv, "create", "--name", "files", "busybox");
    assert!(o.status.success(), "{}", stderr(&o));
    // Out: the tarball streamed as is, after the stat header was decoded.
    let o = docker!(srv, "cp", "files:/etc/hosts", "-");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "TARDATA");
    // In: HEAD to check the destination is a directory, then PUT of the tarball.
    let Some(o) = srv
        .docker_with_stdin(&["cp", "-", "files:/tmp"], Some(b"not really a tar"))
        .await
    else {
        return;
    };
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = srv.fake.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("container_archive_put") && c.ends_with(" /tmp 16")),
        "{calls:?}"
    );
    let o = docker!(srv, "cp", "files:/missing", "-");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Could not find the file /missing"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn docker_run_interactive_tty_resize_and_detach() {
    let srv = start().await;
    if !have_docker() {
        return;
    }
    // A real terminal for the CLI (script(1) allocates a pty): raw mode, resize calls,
    // stdin typed through, then ctrl-p ctrl-q detaches and leaves the container running.
    let cmd = format!(
        "stty cols 100 rows 30; DOCKER_CONFIG={} {DOCKER} -H {} run -it --name tty busybox cat",
        srv.dir.join("cli-config").display(),
        srv.host()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().unwrap();
    use tokio::io::AsyncWriteExt;
    // The CLI resizes after start, by which time its terminal is in raw mode (in
    // cooked mode ctrl-q would be eaten as XON).
    let t0 = std::time::Instant::now();
    while !srv
        .fake
        .calls()
        .iter()
        .any(|c| c.starts_with("container_resize"))
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "no resize"
        );
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The screen, read as it comes: detach only once the container's echo of what was
    // typed is on it (detaching earlier may cut the echo off).
    let mut term = child.stdout.take().unwrap();
    let (seen_tx, mut seen) = tokio::sync::watch::channel(String::new());
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut screen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = term.read(&mut buf).await {
            screen.extend_from_slice(&buf[..n]);
            let _ = seen_tx.send(text(&screen));
        }
        text(&screen)
    });
    stdin.write_all(b"typed\r").await.unwrap();
    let echoed = seen.wait_for(|screen| screen.contains("typed"));
    tokio::time::timeout(std::time::Duration::from_secs(20), echoed)
        .await
        .expect("the typed text is echoed")
        .ok();
    stdin.write_all(&[16, 17]).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("detach ends docker run")
        .unwrap();
    let screen = reader.await.unwrap();
    assert!(screen.contains("typed"), "{screen:?}");
    let calls = srv.fake.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("container_resize") && c.ends_with(" 30x100")),
        "{calls:?}"
    );
    let o = docker!(srv, "inspect", "--format", "{{.State.Running}}", "tty");
    assert_eq!(
        stdout(&o).trim(),
        "true",
        "detaching must not stop the container"
    );
}
