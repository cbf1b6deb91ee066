//! TLS listeners: `--tlsverify` semantics (client certificate required and checked
//! against the CA) with a raw rustls client and with the docker CLI.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use docker_api::{Backend, Listener, LocalAddr, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// Writes `<stem>.pem` (cert) and `<stem>-key.pem` signed by `ca`.
fn leaf(ca: &Ca, dir: &Path, stem: &str, server: bool) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let sans = if server {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    } else {
        vec![]
    };
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, stem);
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    client: (PathBuf, PathBuf),
    rogue_client: (PathBuf, PathBuf),
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn tls_server(verify_clients: bool) -> Pki {
    let dir = tmpdir("tls");
    let ca1 = ca("vch test CA");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca1.cert.pem()).unwrap();
    let (cert, key) = leaf(&ca1, &dir, "server", true);
    let client = leaf(&ca1, &dir, "client", false);
    let rogue = ca("rogue CA");
    let rogue_client = leaf(&rogue, &dir, "rogue", false);

    let backend: Arc<dyn Backend> = Fake::new();
    let server = Server::builder()
        .backend(backend)
        .listen(Listener::Tls {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert,
            key,
            client_ca: verify_clients.then(|| ca_path.clone()),
        })
        .bind()
        .await
        .expect("bind tls");
    let Some(LocalAddr::Tls(addr)) = server.local_addrs().pop() else {
        panic!("no tls addr")
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    Pki {
        dir,
        ca: ca_path,
        client,
        rogue_client,
        addr,
        _stop: tx,
    }
}

/// Pings over TLS with an optional client certificate. `Err` when the server refused
/// us (handshake failure, or the alert surfacing on first read under TLS 1.3).
async fn tls_ping(pki: &Pki, cert: Option<&(PathBuf, PathBuf)>) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some((c, k)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(c).unwrap()],
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(pki.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    if out.is_empty() {
        return Err("connection closed".into());
    }
    Ok(text(&out))
}

#[tokio::test]
async fn tlsverify_requires_a_client_certificate_from_the_ca() {
    let pki = tls_server(true).await;
    let ok = tls_ping(&pki, Some(&pki.client))
        .await
        .expect("client with cert");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nOK"), "{ok}");
    let no_cert = tls_ping(&pki, None).await;
    assert!(
        no_cert.is_err(),
        "a client without certificate got {no_cert:?}"
    );
    let rogue = tls_ping(&pki, Some(&pki.rogue_client)).await;
    assert!(
        rogue.is_err(),
        "a client with a foreign certificate got {rogue:?}"
    );
    let _ = std::fs::remove_dir_all(&pki.dir);
}

#[tokio::test]
async fn tls_without_client_ca_accepts_anyone() {
    let pki = tls_server(false).await;
    let ok = tls_ping(&pki, None).await.expect("no client auth needed");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    let _ = std::fs::remove_dir_all(&pki.dir);
}

#[tokio::test]
async fn docker_cli_with_tlsverify() {
    let pki = tls_server(true).await;
    let host = format!("tcp://127.0.0.1:{}", pki.addr.port());
    let (ca, (cert, key)) = (
        pki.ca.to_str().unwrap(),
        (
            pki.client.0.to_str().unwrap(),
            pki.client.1.to_str().unwrap(),
        ),
    );
    let tls_args = [
        "--tlsverify",
        "--tlscacert",
        ca,
        "--tlscert",
        cert,
        "--tlskey",
        key,
        "-H",
        &host,
    ];
    let mut args = tls_args.to_vec();
    args.extend(["version", "--format", "{{.Server.APIVersion}}"]);
    let Some(o) = run_docker(&pki.dir, &args, None).await else {
        return;
    };
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "1.50");

    // A hijacked attach over TLS.
    let mut args = tls_args.to_vec();
    args.extend(["run", "busybox", "echo", "over tls"]);
    let o = run_docker(&pki.dir, &args, None).await.unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "over tls\n");

    // CA only, no client certificate: refused.
    let o = run_docker(
        &pki.dir,
        &[
            "--tlsverify",
            "--tlscacert",
            ca,
            "-H",
            &host,
            "version",
            "--format",
            "{{.Server.APIVersion}}",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(!o.status.success());
    assert_eq!(text(&o.stdout).trim(), "", "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("certificate required"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&pki.dir);
}
