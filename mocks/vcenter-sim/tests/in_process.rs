//! The simulator as a library: started in-process on an ephemeral loopback port and
//! driven over real HTTPS with a pinned thumbprint, as the embedded VCH default will.

use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vcenter_sim::{SimConfig, SimServer, StateOnlyRuntime};
use vsphere_client::tls::{client_config, TlsTrust};

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vcsim-rs-{}", uuid_like()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{n:x}-{}", std::process::id())
}

async fn start(dir: &std::path::Path) -> SimServer {
    SimServer::start(
        SimConfig::new(dir),
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(StateOnlyRuntime),
    )
    .await
    .expect("simulator starts")
}

/// One HTTP/1.1 request over TLS; returns (status, headers+body text).
async fn https(
    server: &SimServer,
    trust: TlsTrust,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let cfg = client_config(&trust).unwrap();
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nSOAPAction: urn:vim25/8.0.3.0\r\n{cookie}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.ok();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

fn envelope(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"#
    )
}

async fn login(server: &SimServer) -> String {
    let body = envelope(
        r#"<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>administrator@vsphere.local</userName><password>vmware</password></Login>"#,
    );
    let (status, text) = https(
        server,
        TlsTrust::Thumbprint(server.sha256_thumbprint.clone()),
        "POST",
        "/sdk",
        None,
        &body,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("Login sets the session cookie");
    line.split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn pinned_thumbprint_connects_and_wrong_one_is_refused() {
    let dir = temp_dir();
    let server = start(&dir).await;
    let body = envelope(
        r#"<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>"#,
    );
    let (status, text) = https(
        &server,
        TlsTrust::Thumbprint(server.sha1_thumbprint.clone()),
        "POST",
        "/sdk",
        None,
        &body,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("<apiVersion>8.0.3.0</apiVersion>"), "{text}");
    let wrong = "00:".repeat(31) + "00";
    let err = https(
        &server,
        TlsTrust::Thumbprint(wrong),
        "POST",
        "/sdk",
        None,
        &body,
    )
    .await;
    assert!(err.is_err(), "a wrong thumbprint must fail the handshake");
    server.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn unauthenticated_calls_get_not_authenticated_fault() {
    let dir = temp_dir();
    let server = start(&dir).await;
    let body = envelope(
        r#"<CreateFolder xmlns="urn:vim25"><_this type="Folder">group-d1</_this><name>x</name></CreateFolder>"#,
    );
    let (status, text) = https(&server, TlsTrust::Insecure, "POST", "/sdk", None, &body)
        .await
        .unwrap();
    assert_eq!(status, 500);
    assert!(text.contains(r#"xsi:type="NotAuthenticated""#), "{text}");
    server.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn inventory_survives_restart_of_in_process_simulator() {
    let dir = temp_dir();
    let server = start(&dir).await;
    let cookie = login(&server).await;
    let body = envelope(
        r#"<CreateFolder xmlns="urn:vim25"><_this type="Folder">group-d1</_this><name>kept</name></CreateFolder>"#,
    );
    let (status, text) = https(
        &server,
        TlsTrust::Insecure,
        "POST",
        "/sdk",
        Some(&cookie),
        &body,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{text}");
    server.shutdown().await;

    let server = start(&dir).await;
    let cookie = login(&server).await;
    let find = envelope(
        r#"<FindByInventoryPath xmlns="urn:vim25"><_this type="SearchIndex">SearchIndex</_this><inventoryPath>kept</inventoryPath></FindByInventoryPath>"#,
    );
    let (status, text) = https(
        &server,
        TlsTrust::Insecure,
        "POST",
        "/sdk",
        Some(&cookie),
        &find,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains(r#"<returnval type="Folder">"#), "{text}");
    server.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}
