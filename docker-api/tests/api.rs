//! Raw-HTTP tests: handshake, negotiation, errors, bodies, filters, hijacking, streams,
//! listeners and shutdown. Exact bytes matter here, so no HTTP client library is used.

mod common;

use std::time::Duration;

use common::*;
use docker_api::routes::{Handler, ROUTES};
use docker_api::stdcopy;
use docker_api::{Listener, Server, ServerError};
use tokio::io::AsyncWriteExt;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const UPGRADE: [(&str, &str); 2] = [("Connection", "Upgrade"), ("Upgrade", "tcp")];

async fn create(srv: &TestServer, name: &str, body: serde_json::Value) -> String {
    let r = srv
        .request(
            "POST",
            &format!("/v1.50/containers/create?name={name}"),
            &[JSON],
            body.to_string().as_bytes(),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text());
    r.json()["Id"].as_str().unwrap().to_string()
}

async fn start_container(srv: &TestServer, id: &str) {
    let r = srv
        .request("POST", &format!("/v1.50/containers/{id}/start"), &[], b"")
        .await;
    assert_eq!(r.status(), 204, "{}", r.text());
}

#[tokio::test]
async fn ping_headers_like_dockerd() {
    let srv = start().await;
    for path in ["/_ping", "/v1.50/_ping", "/v1.24/_ping"] {
        let r = srv.get(path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "OK");
        let h = &r.head;
        assert_eq!(h.header("Api-Version"), Some("1.50"));
        assert_eq!(h.header("Ostype"), Some("linux"));
        assert_eq!(h.header("Docker-Experimental"), Some("false"));
        assert_eq!(h.header("Builder-Version"), Some("1"));
        assert_eq!(h.header("Swarm"), Some("inactive"));
        assert_eq!(
            h.header("Cache-Control"),
            Some("no-cache, no-store, must-revalidate")
        );
        assert_eq!(h.header("Pragma"), Some("no-cache"));
        assert!(h.header("Server").unwrap().starts_with("Docker/"));
    }
    let r = srv.request("HEAD", "/_ping", &[], b"").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.head.header("Content-Length"), Some("0"));
    assert_eq!(r.head.header("Api-Version"), Some("1.50"));
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn keep_alive_serves_several_requests() {
    let srv = start().await;
    let mut raw = Raw::tcp(srv.tcp).await;
    for _ in 0..3 {
        raw.send_request("GET", "/_ping", &[], b"", false).await;
        let r = raw.read_response().await;
        assert_eq!(r.text(), "OK");
    }
}

#[tokio::test]
async fn version_negotiation_and_wording() {
    let srv = start().await;
    let r = srv.get("/v1.52/info").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.message(),
        "client version 1.52 is too new. Maximum supported API version is 1.50"
    );
    let r = srv.get("/v1.12/info").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.message(),
        "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
    );
    let r = srv.get("/v1.24/version").await;
    assert_eq!(r.status(), 200);
    let v = r.json();
    assert_eq!(v["ApiVersion"], "1.50");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Version"], "28.3.0");
    let r = srv.get("/info").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json()["Swarm"]["LocalNodeState"], "inactive");
    // Unknown paths are 404 whatever the version.
    let r = srv.get("/v1.52/nonexistent").await;
    assert_eq!((r.status(), r.message()), (404, "page not found".into()));
}

#[tokio::test]
async fn unknown_paths_get_page_not_found_and_real_routes_never_do() {
    let srv = start().await;
    for (m, p) in [
        ("GET", "/nope"),
        ("PUT", "/_ping"),
        ("GET", "/v1.50"),
        ("POST", "/containers/json"),
    ] {
        let r = srv.request(m, p, &[], b"").await;
        assert_eq!(r.status(), 404, "{m} {p}");
        assert_eq!(r.message(), "page not found", "{m} {p}");
    }
    for route in ROUTES {
        let mut path = route
            .pattern
            .replace("{name}", "x")
            .replace("{id}", "x")
            .replace("{checkpoint}", "x")
            .replace("{anyroute}", "x");
        if route.handler == Handler::Events {
            path.push_str("?until=1");
        }
        let r = srv.request(route.method, &path, &[], b"").await;
        let page_not_found =
            r.status() == 404 && !r.body.is_empty() && r.message() == "page not found";
        assert!(
            !page_not_found,
            "{} {} answered page not found",
            route.method, path
        );
        if let Handler::Unsupported(feature) = route.handler {
            assert_eq!(r.status(), 501, "{} {}", route.method, path);
            assert_eq!(
                r.message(),
                format!("{feature} is not supported by this VCH")
            );
        }
    }
}

#[tokio::test]
async fn not_implemented_and_error_texts() {
    let srv = start().await;
    let r = srv.get("/v1.50/plugins").await;
    assert_eq!(r.status(), 501);
    assert_eq!(
        r.text(),
        "{\"message\":\"plugins is not supported by this VCH\"}\n"
    );
    assert_eq!(r.head.header("Content-Type"), Some("application/json"));
    let r = srv
        .request("POST", "/v1.50/swarm/init", &[JSON], b"{}")
        .await;
    assert_eq!(
        (r.status(), r.message()),
        (501, "swarm is not supported by this VCH".into())
    );
    // An implemented route whose backend method is left at its default.
    let r = srv.get("/v1.50/containers/x/top").await;
    assert_eq!(
        (r.status(), r.message()),
        (501, "container top is not supported by this VCH".into())
    );

    let r = srv.get("/v1.50/containers/nope/json").await;
    assert_eq!(
        (r.status(), r.message()),
        (404, "No such container: nope".into())
    );
    let r = srv.get("/v1.50/images/library/nope:1/json").await;
    assert_eq!(
        (r.status(), r.message()),
        (404, "No such image: library/nope:1".into())
    );
    let id = create(
        &srv,
        "web",
        serde_json::json!({"Image": "busybox", "Cmd": ["echo"]}),
    )
    .await;
    let r = srv
        .request(
            "POST",
            "/v1.50/containers/create?name=web",
            &[JSON],
            br#"{"Image":"busybox"}"#,
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.message(),
        format!("Conflict. The container name \"/web\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")
    );
    // Exec ids are answered with a capitalised "Id", like dockerd.
    start_container(&srv, &id).await;
    let r = srv
        .request("POST", "/v1.50/containers/web/stop", &[], b"")
        .await;
    assert!(r.status() == 204 || r.status() == 304, "{}", r.status());
}

#[tokio::test]
async fn malformed_bodies_and_parameters() {
    let srv = start_with(|b| b.max_body_bytes(1024)).await;
    let post = |body: &'static [u8], ct: &'static str| {
        let srv = &srv;
        async move {
            srv.request(
                "POST",
                "/v1.50/containers/create",
                &[("Content-Type", ct)],
                body,
            )
            .await
        }
    };
    let r = post(b"{", "application/json").await;
    assert_eq!(r.status(), 400);
    assert!(r.message().starts_with("invalid JSON"), "{}", r.message());
    let r = post(br#"{"Image":"busybox","Env":"A=1"}"#, "application/json").await;
    assert_eq!(r.status(), 400);
    assert!(r.message().contains("Env"), "{}", r.message());
    let r = post(br#"{"HostConfig":{"Memory":"lots"}}"#, "application/json").await;
    assert!(r.message().contains("HostConfig.Memory"), "{}", r.message());
    let r = post(br#"{"Image":"busybox"} trailing"#, "application/json").await;
    assert_eq!(
        (r.status(), r.message()),
        (400, "unexpected content after JSON".into())
    );
    let r = post(br#"{"Image":"busybox"}"#, "text/plain").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.message(),
        "unsupported Content-Type header (text/plain): must be 'application/json'"
    );
    let r = post(b"", "application/json").await;
    assert_eq!(
        (r.status(), r.message()),
        (
            400,
            "config cannot be empty in order to create a container".into()
        )
    );
    let big = format!("{{\"Image\":\"{}\"}}", "x".repeat(2000));
    let r = srv
        .request("POST", "/v1.50/containers/create", &[JSON], big.as_bytes())
        .await;
    assert_eq!(r.status(), 413);
    let r = srv
        .request(
            "POST",
            "/v1.50/containers/create?name=a%20b",
            &[JSON],
            br#"{"Image":"busybox"}"#,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.message().starts_with("Invalid container name (a b)"));
    let r = srv.get("/v1.50/containers/json?limit=abc").await;
    assert_eq!(r.status(), 400);
    assert!(r.message().contains("limit"), "{}", r.message());
    let r = srv
        .request("POST", "/v1.50/containers/x/resize?h=10", &[], b"")
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.message().contains("parameter w"), "{}", r.message());
    let r = srv.get("/v1.50/containers/x/logs").await;
    assert_eq!(
        (r.status(), r.message()),
        (
            400,
            "Bad parameters: you must choose at least one stream".into()
        )
    );
}

#[tokio::test]
async fn filters_both_forms_and_unknown_keys() {
    let srv = start().await;
    create(
        &srv,
        "alpha",
        serde_json::json!({"Image": "busybox", "Labels": {"tier": "web"}}),
    )
    .await;
    create(&srv, "beta", serde_json::json!({"Image": "busybox"})).await;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let list = |q: String| {
        let srv = &srv;
        async move {
            srv.get(&format!("/v1.50/containers/json?all=1&filters={q}"))
                .await
        }
    };
    let r = list(enc(r#"{"bogus":{"x":true}}"#)).await;
    assert_eq!(
        (r.status(), r.message()),
        (400, "invalid filter 'bogus'".into())
    );
    let r = list(enc(r#"{"name":{"alpha":true}}"#)).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert_eq!(r.json()[0]["Names"][0], "/alpha");
    let r = list(enc(r#"{"name":["beta"]}"#)).await;
    assert_eq!(r.json()[0]["Names"][0], "/beta");
    let r = list(enc(r#"{"label":{"tier=web":true}}"#)).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = list(enc("not json")).await;
    assert_eq!(r.status(), 400);
    let r = srv
        .get(&format!(
            "/v1.50/volumes?filters={}",
            enc(r#"{"dangling":["true"]}"#)
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert!(srv
        .fake
        .calls()
        .contains(&r#"volume_list {"dangling":{"true":true}}"#.to_string()));
}

/// Attaches over `raw` (already connected) and returns the response head.
async fn attach(raw: &mut Raw, path: &str, upgrade: bool, stdin_data: &[u8]) -> Head {
    let headers: &[(&str, &str)] = if upgrade { &UPGRADE } else { &[] };
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: text/plain\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    // Stdin sent together with the request: it lands in hyper's read buffer and must be
    // handed over with the connection.
    bytes.extend_from_slice(stdin_data);
    raw.send(&bytes).await;
    raw.read_head().await
}

#[tokio::test]
async fn attach_upgrade_multiplexed_then_start() {
    let srv = start().await;
    let id = create(
        &srv,
        "a1",
        serde_json::json!({"Image": "busybox", "Cmd": ["echo", "hello"]}),
    )
    .await;
    let mut raw = srv.raw().await;
    let head = attach(
        &mut raw,
        &format!("/v1.50/containers/{id}/attach?stream=1&stdout=1&stderr=1"),
        true,
        b"",
    )
    .await;
    assert_eq!(head.status_line, "HTTP/1.1 101 UPGRADED");
    assert_eq!(
        head.header("Content-Type"),
        Some("application/vnd.docker.multiplexed-stream")
    );
    assert_eq!(head.header("Connection"), Some("Upgrade"));
    assert_eq!(head.header("Upgrade"), Some("tcp"));
    assert_eq!(head.header("Api-Version"), Some("1.50"));
    start_container(&srv, &id).await;
    let out = raw.read_to_end().await;
    assert_eq!(&out[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
    let (stdout, stderr) = stdcopy::demux(&out).unwrap();
    assert_eq!(
        (text(&stdout), text(&stderr)),
        ("hello\n".into(), String::new())
    );
}

#[tokio::test]
async fn attach_tty_is_raw_and_old_api_uses_raw_content_type() {
    let srv = start().await;
    let id = create(
        &srv,
        "t1",
        serde_json::json!({"Image": "busybox", "Tty": true, "Cmd": ["echo", "tty"]}),
    )
    .await;
    let mut raw = Raw::tcp(srv.tcp).await;
    let head = attach(
        &mut raw,
        &format!("/v1.50/containers/{id}/attach?stream=1&stdout=1"),
        true,
        b"",
    )
    .await;
    assert_eq!(
        head.header("Content-Type"),
        Some("application/vnd.docker.raw-stream")
    );
    start_container(&srv, &id).await;
    assert_eq!(text(&raw.read_to_end().await), "tty\n");

    // Before API 1.42 dockerd labels even multiplexed streams as raw.
    let id = create(
        &srv,
        "o1",
        serde_json::json!({"Image": "busybox", "Cmd": ["warn", "old"]}),
    )
    .await;
    let mut raw = srv.raw().await;
    let head = attach(
        &mut raw,
        &format!("/v1.41/containers/{id}/attach?stream=1&stderr=1"),
        true,
        b"",
    )
    .await;
    assert_eq!(
        head.header("Content-Type"),
        Some("application/vnd.docker.raw-stream")
    );
    start_container(&srv, &id).await;
    let (_, stderr) = stdcopy::demux(&raw.read_to_end().await).unwrap();
    assert_eq!(text(&stderr), "old\n");
}

#[tokio::test]
async fn attach_without_upgrade_header_gets_200_raw_stream() {
    let srv = start().await;
    let id = create(
        &srv,
        "l1",
        serde_json::json!({"Image": "busybox", "Cmd": ["echo", "legacy"]}),
    )
    .await;
    let mut raw = srv.raw().await;
    let head = attach(
        &mut raw,
        &format!("/v1.50/containers/{id}/attach?stream=1&stdout=1"),
        false,
        b"",
    )
    .await;
    assert!(
        head.raw
            .starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"),
        "{}",
        head.raw
    );
    assert!(head.header("Content-Length").is_none());
    assert!(head.header("Transfer-Encoding").is_none());
    start_container(&srv, &id).await;
    let (stdout, _) = stdcopy::demux(&raw.read_to_end().await).unwrap();
    assert_eq!(text(&stdout), "legacy\n");
}

#[tokio::test]
async fn attach_stdin_then_half_close() {
    let srv = start().await;
    let id = create(
        &srv,
        "cat1",
        serde_json::json!({"Image": "busybox", "OpenStdin": true, "StdinOnce": true, "Cmd": ["cat"]}),
    )
    .await;
    let mut raw = srv.raw().await;
    let head = attach(
        &mut raw,
        &format!("/v1.50/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1"),
        true,
        b"early ",
    )
    .await;
    assert_eq!(head.status, 101);
    // Without a TTY stdin is data: the detach keys (ctrl-p ctrl-q) pass through, as in dockerd.
    raw.send(b"\x10\x11late\n").await;
    // Half-close: no more stdin. The container's stdin closes, `cat` exits, the server
    // closes the stream.
    raw.io.shutdown().await.unwrap();
    start_container(&srv, &id).await;
    let (stdout, _) = stdcopy::demux(&raw.read_to_end().await).unwrap();
    assert_eq!(text(&stdout), "early \x10\x11late\n");
    let r = srv.get(&format!("/v1.50/containers/{id}/json")).await;
    assert_eq!(r.json()["State"]["Status"], "exited");
}

#[tokio::test]
async fn detach_keys_end_the_session_not_the_container() {
    let srv = start().await;
    let id = create(
        &srv,
        "cat2",
        serde_json::json!({"Image": "busybox", "OpenStdin": true, "Tty": true, "Cmd": ["cat"]}),
    )
    .await;
    start_container(&srv, &id).await;
    let mut raw = srv.raw().await;
    let head = attach(
        &mut raw,
        &format!("/v1.50/containers/{id}/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x"),
        true,
        b"",
    )
    .await;
    assert_eq!(head.status, 101);
    raw.send(b"abc\n").await;
    let echoed = raw.read_exact(4).await;
    assert_eq!(echoed, b"abc\n");
    raw.send(&[24]).await;
    // Session over: EOF without the container stopping.
    assert!(raw.read_to_end().await.is_empty());
    let r = srv.get(&format!("/v1.50/containers/{id}/json")).await;
    assert_eq!(r.json()["State"]["Running"], true);
    let r = srv
        .request(
            "POST",
            &format!("/v1.50/containers/{id}/attach?detachKeys=ctrl-pp"),
            &UPGRADE,
            b"",
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn wait_sends_headers_first_and_the_body_at_exit() {
    let srv = start().await;
    let id = create(
        &srv,
        "w1",
        serde_json::json!({"Image": "busybox", "Cmd": ["sleep"]}),
    )
    .await;
    start_container(&srv, &id).await;
    let mut raw = srv.raw().await;
    raw.send_request(
        "POST",
        &format!("/v1.50/containers/{id}/wait?condition=next-exit"),
        &[],
        b"",
        true,
    )
    .await;
    let head = tokio::time::timeout(Duration::from_secs(5), raw.read_head())
        .await
        .expect("wait headers must arrive before the container exits");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("application/json"));
    let r = srv
        .request("POST", &format!("/v1.50/containers/{id}/kill"), &[], b"")
        .await;
    assert_eq!(r.status(), 204);
    let body = raw.read_body(&head).await;
    assert_eq!(text(&body), "{\"StatusCode\":137}\n");
    let r = srv
        .request(
            "POST",
            "/v1.50/containers/x/wait?condition=whenever",
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn logs_framing_timestamps_and_tail() {
    let srv = start().await;
    let id = create(
        &srv,
        "g1",
        serde_json::json!({"Image": "busybox", "Cmd": ["echo", "logged"]}),
    )
    .await;
    let mut raw = srv.raw().await;
    raw.send_request(
        "POST",
        &format!("/v1.50/containers/{id}/wait?condition=next-exit"),
        &[],
        b"",
        true,
    )
    .await;
    start_container(&srv, &id).await;
    let r = raw.read_response().await;
    assert_eq!(r.json()["StatusCode"], 0);

    let r = srv
        .get(&format!("/v1.50/containers/{id}/logs?stdout=1&stderr=1"))
        .await;
    assert_eq!(
        r.head.header("Content-Type"),
        Some("application/vnd.docker.multiplexed-stream")
    );
    assert_eq!(text(&stdcopy::demux(&r.body).unwrap().0), "logged\n");
    let r = srv
        .get(&format!(
            "/v1.50/containers/{id}/logs?stdout=1&timestamps=1"
        ))
        .await;
    let line = text(&stdcopy::demux(&r.body).unwrap().0);
    let (ts, rest) = line.split_once(' ').unwrap();
    assert_eq!(rest, "logged\n");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert_eq!(ts.len(), "2025-01-01T00:00:00.000000000Z".len(), "{ts}");
    let r = srv
        .get(&format!("/v1.50/containers/{id}/logs?stdout=1&tail=0"))
        .await;
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn pull_progress_is_json_lines_and_early_errors_are_statuses() {
    let srv = start().await;
    let mut raw = srv.raw().await;
    raw.send_request(
        "POST",
        "/v1.50/images/create?fromImage=alpine&tag=3",
        &[],
        b"",
        true,
    )
    .await;
    let head = raw.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("application/json"));
    // Messages arrive one by one, each a complete JSON line.
    let mut lines = Vec::new();
    while let Some(chunk) = raw.read_chunk().await {
        let t = text(&chunk);
        assert!(t.ends_with('\n'), "{t:?}");
        for l in t.lines() {
            lines.push(serde_json::from_str::<serde_json::Value>(l).unwrap());
        }
    }
    assert_eq!(lines[0]["status"], "Pulling from library/alpine");
    assert!(lines
        .iter()
        .any(|l| l["progressDetail"]["total"] == 2_000_000));
    assert_eq!(
        lines.last().unwrap()["status"],
        "Status: Downloaded newer image for alpine:3"
    );
    let r = srv
        .request(
            "POST",
            "/v1.50/images/create?fromImage=nonexistent",
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status(), 404);
    assert!(r
        .message()
        .starts_with("pull access denied for nonexistent"));
}

#[tokio::test]
async fn events_stream_and_graceful_shutdown() {
    let mut srv = start_with(|b| b.shutdown_grace(Duration::from_millis(300))).await;
    let mut raw = srv.raw().await;
    raw.send_request("GET", "/v1.50/events", &[], b"", false)
        .await;
    let head = raw.read_head().await;
    assert_eq!(head.status, 200);
    create(&srv, "ev1", serde_json::json!({"Image": "busybox"})).await;
    let chunk = raw.read_chunk().await.expect("an event");
    let ev: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(
        (ev["Type"].as_str(), ev["Action"].as_str()),
        (Some("container"), Some("create"))
    );
    assert_eq!(ev["Actor"]["Attributes"]["name"], "ev1");

    let stopping = tokio::spawn(async move {
        let took = srv.stop().await;
        (srv, took)
    });
    // The stream is ended cleanly: the terminating chunk, then the connection closes.
    assert!(raw.read_chunk().await.is_none());
    let (srv, took) = stopping.await.unwrap();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!srv.sock.exists(), "socket file removed at shutdown");
    assert!(tokio::net::UnixStream::connect(&srv.sock).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_short_requests_finish() {
    let mut srv = start_with(|b| b.shutdown_grace(Duration::from_secs(5))).await;
    let id = create(
        &srv,
        "s1",
        serde_json::json!({"Image": "busybox", "Cmd": ["sleep"]}),
    )
    .await;
    start_container(&srv, &id).await;
    let mut raw = srv.raw().await;
    raw.send_request(
        "POST",
        &format!("/v1.50/containers/{id}/wait"),
        &[],
        b"",
        false,
    )
    .await;
    let head = raw.read_head().await;
    let fake = srv.fake.clone();
    let sock = srv.sock.clone();
    let stopping = tokio::spawn(async move { srv.stop().await });
    // Shutdown has begun once the socket file is gone (the listeners stop first).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "shutdown did not start"
        );
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The wait is still served: the container exits within the grace period.
    docker_api::Backend::container_kill(&*fake, &id, None)
        .await
        .unwrap();
    assert_eq!(text(&raw.read_body(&head).await), "{\"StatusCode\":137}\n");
    assert!(stopping.await.unwrap() < Duration::from_secs(4));
}

#[tokio::test]
async fn plain_tcp_only_on_loopback_unless_forced() {
    let b: std::sync::Arc<dyn docker_api::Backend> = Fake::new();
    let err = Server::builder()
        .backend(b.clone())
        .listen(Listener::Tcp {
            addr: "0.0.0.0:0".parse().unwrap(),
            force: false,
        })
        .bind()
        .await
        .err()
        .expect("must refuse");
    assert!(matches!(err, ServerError::InsecureTcp(_)), "{err}");
    let ok = Server::builder()
        .backend(b)
        .listen(Listener::Tcp {
            addr: "0.0.0.0:0".parse().unwrap(),
            force: true,
        })
        .bind()
        .await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn unix_socket_replaces_stale_file_and_is_0660() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmpdir("sock");
    let path = dir.join("nested/docker.sock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"stale").unwrap();
    let b: std::sync::Arc<dyn docker_api::Backend> = Fake::new();
    let _server = Server::builder()
        .backend(b)
        .listen(Listener::Unix(path.clone()))
        .bind()
        .await
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn exec_create_answers_capitalised_id_and_options_is_ok() {
    let srv = start().await;
    let id = create(
        &srv,
        "x1",
        serde_json::json!({"Image": "busybox", "Cmd": ["sleep"]}),
    )
    .await;
    start_container(&srv, &id).await;
    let r = srv
        .request(
            "POST",
            &format!("/v1.50/containers/{id}/exec"),
            &[JSON],
            br#"{"Cmd":["echo","hi"],"AttachStdout":true}"#,
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text());
    assert!(r.json()["Id"].as_str().unwrap().starts_with("exec"));
    let r = srv
        .request(
            "POST",
            &format!("/v1.50/containers/{id}/exec"),
            &[JSON],
            br#"{"Cmd":[]}"#,
        )
        .await;
    assert_eq!(
        (r.status(), r.message()),
        (400, "No exec command specified".into())
    );
    let r = srv
        .request("OPTIONS", "/v1.50/containers/json", &[], b"")
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn stats_one_sample_or_a_stream() {
    let srv = start().await;
    let id = create(
        &srv,
        "st1",
        serde_json::json!({"Image": "busybox", "Cmd": ["sleep"]}),
    )
    .await;
    let r = srv
        .get(&format!("/v1.50/containers/{id}/stats?stream=false"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json()["name"], "/st1");
    let r = srv
        .get(&format!("/v1.50/containers/{id}/stats?stream=1&one-shot=1"))
        .await;
    assert_eq!(r.status(), 400);
    let mut raw = srv.raw().await;
    raw.send_request(
        "GET",
        &format!("/v1.50/containers/{id}/stats"),
        &[],
        b"",
        true,
    )
    .await;
    let head = raw.read_head().await;
    assert_eq!(head.header("Transfer-Encoding"), Some("chunked"));
    for _ in 0..3 {
        let chunk = raw.read_chunk().await.expect("a sample per chunk");
        let v: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
        assert_eq!(v["pids_stats"]["current"], 1);
    }
}

#[tokio::test]
async fn progress_errors_after_headers_are_in_stream() {
    let srv = start().await;
    let r = srv
        .request("POST", "/v1.50/images/create?fromImage=flaky", &[], b"")
        .await;
    assert_eq!(r.status(), 200);
    let lines: Vec<serde_json::Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[1]["errorDetail"]["message"],
        "unexpected EOF while downloading layer"
    );
    assert_eq!(lines[1]["error"], "unexpected EOF while downloading layer");
}

#[tokio::test]
async fn exec_start_detached_returns_at_once() {
    let srv = start().await;
    let id = create(
        &srv,
        "d1",
        serde_json::json!({"Image": "busybox", "Cmd": ["sleep"]}),
    )
    .await;
    start_container(&srv, &id).await;
    let r = srv
        .request(
            "POST",
            &format!("/v1.50/containers/{id}/exec"),
            &[JSON],
            br#"{"Cmd":["echo","x"]}"#,
        )
        .await;
    let exec = r.json()["Id"].as_str().unwrap().to_string();
    let r = srv
        .request(
            "POST",
            &format!("/v1.50/exec/{exec}/start"),
            &[JSON],
            br#"{"Detach":true}"#,
        )
        .await;
    assert_eq!((r.status(), r.body.len()), (200, 0));
    let r = srv
        .request(
            "POST",
            "/v1.50/exec/nope/start",
            &[JSON, UPGRADE[0], UPGRADE[1]],
            b"{}",
        )
        .await;
    assert_eq!(
        (r.status(), r.message()),
        (404, "No such exec instance: nope".into())
    );
}

#[tokio::test]
async fn shutdown_closes_hijacked_sessions_cleanly() {
    let mut srv = start_with(|b| b.shutdown_grace(Duration::from_millis(200))).await;
    let id = create(
        &srv,
        "h1",
        serde_json::json!({"Image": "busybox", "Cmd": ["sleep"]}),
    )
    .await;
    start_container(&srv, &id).await;
    let mut raw = srv.raw().await;
    let head = attach(
        &mut raw,
        &format!("/v1.50/containers/{id}/attach?stream=1&stdout=1"),
        true,
        b"",
    )
    .await;
    assert_eq!(head.status, 101);
    let stopping = tokio::spawn(async move { srv.stop().await });
    // The session is ended with a clean close (EOF), not left hanging.
    let rest = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end())
        .await
        .expect("session closed at shutdown");
    assert!(rest.is_empty());
    assert!(stopping.await.unwrap() < Duration::from_secs(3));
}

#[tokio::test]
async fn unread_bodies_are_drained_so_the_connection_survives() {
    let srv = start().await;
    let mut raw = Raw::tcp(srv.tcp).await;
    // An early error (501 before the body is looked at) with a sizeable body...
    let body = vec![b' '; 64 * 1024];
    raw.send_request("POST", "/v1.50/swarm/init", &[JSON], &body, false)
        .await;
    let r = raw.read_response().await;
    assert_eq!(r.status(), 501);
    // ...leaves the connection usable, as with dockerd.
    raw.send_request("GET", "/_ping", &[], b"", false).await;
    assert_eq!(raw.read_response().await.text(), "OK");
    let mut raw = Raw::tcp(srv.tcp).await;
    raw.send_request("POST", "/v1.99/containers/create", &[JSON], &body, false)
        .await;
    assert_eq!(raw.read_response().await.status(), 400);
    raw.send_request("GET", "/_ping", &[], b"", false).await;
    assert_eq!(raw.read_response().await.text(), "OK");
}
