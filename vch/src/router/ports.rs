//! Published ports (`-p [ip:]host:container[/udp]`, `-P`): the VCH listens on its public
//! side and forwards each connection (TCP) or client (UDP) to the container's address,
//! reached through [`GuestSide`]: a user-space proxy, as docker-proxy is (see
//! docs/design.md for why not DNAT). Listeners exist while the container runs.

use super::GuestSide;
use docker_api::models::{Port, PortBinding, PortMap};
use docker_api::Error;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};

/// How long a UDP client may stay silent before its session is forgotten (docker-proxy's
/// conntrack-like timeout).
const UDP_IDLE: Duration = Duration::from_secs(30);
/// UDP clients per published port.
const UDP_SESSIONS: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Copy buffer per direction of a proxied TCP connection.
const COPY_BUF: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// What a container asks to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub host_ip: IpAddr,
    /// Inclusive range; (0, 0): any free port.
    pub host_ports: (u16, u16),
    pub container_port: u16,
    pub proto: Proto,
}

/// What is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

/// `80/tcp`, `53/udp`, `8080` (tcp).
pub fn parse_port_key(key: &str) -> Result<(u16, Proto), Error> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => {
            return Err(Error::invalid(format!(
                "publishing {key}: sctp ports are not supported by this VCH"
            )))
        }
        p => return Err(Error::invalid(format!("invalid proto: {p}"))),
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::invalid(format!("invalid port specification: {key:?}")))?;
    Ok((port, proto))
}

fn parse_host_ports(text: &str) -> Result<(u16, u16), Error> {
    let bad = || Error::invalid(format!("invalid host port: {text:?}"));
    let text = text.trim();
    if text.is_empty() || text == "0" {
        return Ok((0, 0));
    }
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b) = (
        a.parse::<u16>().map_err(|_| bad())?,
        b.parse::<u16>().map_err(|_| bad())?,
    );
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// The bindings of `HostConfig.PortBindings`, plus, with `-P`, every exposed port of the
/// container and its image on a free host port.
pub fn bindings(
    port_bindings: Option<&PortMap>,
    publish_all: bool,
    exposed: &[String],
) -> Result<Vec<Binding>, Error> {
    let mut out = Vec::new();
    let mut keys: Vec<&String> = port_bindings
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    keys.sort();
    for key in keys {
        let (container_port, proto) = parse_port_key(key)?;
        let list = port_bindings
            .and_then(|m| m.get(key))
            .and_then(|l| l.as_ref());
        for b in list.into_iter().flatten() {
            let ip = b.host_ip.as_deref().unwrap_or("").trim();
            let host_ip: IpAddr = if ip.is_empty() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                ip.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid IP address: {ip}")))?
            };
            out.push(Binding {
                host_ip,
                host_ports: parse_host_ports(b.host_port.as_deref().unwrap_or(""))?,
                container_port,
                proto,
            });
        }
    }
    if publish_all {
        for key in exposed {
            let (container_port, proto) = parse_port_key(key)?;
            if !out
                .iter()
                .any(|b| b.container_port == container_port && b.proto == proto)
            {
                out.push(Binding {
                    host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    host_ports: (0, 0),
                    container_port,
                    proto,
                });
            }
        }
    }
    Ok(out)
}

struct Published {
    bound: Vec<Bound>,
    /// One per listener; each owns its connections, so aborting it closes them too.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Published {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The published ports of every container of a VCH.
pub struct Publisher {
    side: Arc<dyn GuestSide>,
    active: Mutex<HashMap<String, Published>>,
}

fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

fn external_error(name: &str, id: &str, what: String) -> Error {
    Error::Internal(format!(
        "driver failed programming external connectivity on endpoint {name} ({id}): {what}"
    ))
}

impl Publisher {
    pub fn new(side: Arc<dyn GuestSide>) -> Publisher {
        Publisher {
            side,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Starts forwarding `bindings` of container `id` (named `name`) to `to`. All or
    /// nothing; publishing a container again first stops what it had.
    pub async fn publish(
        &self,
        id: &str,
        name: &str,
        to: Ipv4Addr,
        bindings: &[Binding],
    ) -> Result<Vec<Bound>, Error> {
        self.unpublish(id);
        let mut made = Published {
            bound: vec![],
            tasks: vec![],
        };
        for b in bindings {
            let (bound, task) = self.bind_one(id, name, to, b, &made.bound).await?;
            made.bound.push(bound);
            made.tasks.push(task);
        }
        let out = made.bound.clone();
        self.active.lock().insert(id.to_string(), made);
        Ok(out)
    }

    /// Stops forwarding for a container: listeners and live connections close.
    pub fn unpublish(&self, id: &str) {
        self.active.lock().remove(id);
    }

    pub fn bound(&self, id: &str) -> Vec<Bound> {
        self.active
            .lock()
            .get(id)
            .map(|p| p.bound.clone())
            .unwrap_or_default()
    }

    /// The host port another container (or this one's earlier binding) holds.
    fn taken(&self, ip: IpAddr, port: u16, proto: Proto, mine: &[Bound]) -> bool {
        let clash = |b: &Bound| b.proto == proto && b.host_port == port && overlaps(b.host_ip, ip);
        mine.iter().any(clash)
            || self
                .active
                .lock()
                .values()
                .any(|p| p.bound.iter().any(clash))
    }

    async fn bind_one(
        &self,
        id: &str,
        name: &str,
        to: Ipv4Addr,
        b: &Binding,
        mine: &[Bound],
    ) -> Result<(Bound, JoinHandle<()>), Error> {
        let (lo, hi) = b.host_ports;
        // Port 0: the kernel picks a free one from ip_local_port_range, as dockerd's
        // allocator does from the same range, without a race with other processes.
        let candidates: Vec<u16> = if lo == 0 {
            vec![0]
        } else {
            (lo..=hi).collect()
        };
        let mut last_err = None;
        for port in candidates {
            if port != 0 && self.taken(b.host_ip, port, b.proto, mine) {
                last_err = Some(external_error(
                    name,
                    id,
                    format!(
                        "Bind for {}:{port} failed: port is already allocated",
                        fmt_ip(b.host_ip)
                    ),
                ));
                continue;
            }
            let at = SocketAddr::new(b.host_ip, port);
            let target = SocketAddr::new(IpAddr::V4(to), b.container_port);
            let started = match b.proto {
                Proto::Tcp => listen_tcp(at, target, self.side.clone()).await,
                Proto::Udp => listen_udp(at, target, self.side.clone()).await,
            };
            match started {
                Ok((port, task)) => {
                    return Ok((
                        Bound {
                            host_ip: b.host_ip,
                            host_port: port,
                            container_port: b.container_port,
                            proto: b.proto,
                        },
                        task,
                    ))
                }
                Err(e) => {
                    let family = if b.host_ip.is_ipv4() { "4" } else { "6" };
                    last_err = Some(external_error(
                        name,
                        id,
                        format!(
                            "failed to bind port {}:{port}/{p}: Error starting userland proxy: listen {p}{family} {}:{port}: bind: {}",
                            fmt_ip(b.host_ip),
                            fmt_ip(b.host_ip),
                            bind_reason(&e),
                            p = b.proto.name(),
                        ),
                    ));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::internal("no host port to publish on")))
    }
}

fn fmt_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// Go's wording of the common bind errors, as dockerd shows them.
fn bind_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

async fn listen_tcp(
    at: SocketAddr,
    target: SocketAddr,
    side: Arc<dyn GuestSide>,
) -> io::Result<(u16, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(at).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { continue };
                    let side = side.clone();
                    conns.spawn(async move {
                        if let Err(e) = proxy_tcp(client, target, &*side).await {
                            tracing::debug!(%target, "published port: {e}");
                        }
                    });
                }
                // Reap finished connections so the set does not grow.
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Ok((port, task))
}

async fn proxy_tcp(
    mut client: tokio::net::TcpStream,
    target: SocketAddr,
    side: &dyn GuestSide,
) -> io::Result<()> {
    let sock = side.tcp_socket()?;
    let mut upstream = tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    // 256 KiB each way instead of tokio's 8 KiB: a bulk transfer then costs a few
    // syscalls per MiB (measured: ~100 → see docs/benchmarks.md).
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, COPY_BUF, COPY_BUF)
        .await?;
    Ok(())
}

async fn listen_udp(
    at: SocketAddr,
    target: SocketAddr,
    side: Arc<dyn GuestSide>,
) -> io::Result<(u16, JoinHandle<()>)> {
    let front = Arc::new(tokio::net::UdpSocket::bind(at).await?);
    let port = front.local_addr()?.port();
    let task = tokio::spawn(async move {
        // client -> (its socket to the container, the time it last spoke)
        let sessions: Arc<Mutex<HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>>> =
            Arc::new(Mutex::new(HashMap::new()));
        let mut relays = JoinSet::new();
        let mut buf = vec![0u8; 65535];
        loop {
            tokio::select! {
                got = front.recv_from(&mut buf) => {
                    let Ok((n, client)) = got else { continue };
                    let existing = sessions.lock().get(&client).cloned();
                    let back = match existing {
                        Some(s) => s,
                        None => {
                            if sessions.lock().len() >= UDP_SESSIONS {
                                continue;
                            }
                            let Ok(s) = side.udp_bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)) else { continue };
                            if s.connect(target).await.is_err() {
                                continue;
                            }
                            let s = Arc::new(s);
                            sessions.lock().insert(client, s.clone());
                            let (front, sessions, s2) = (front.clone(), sessions.clone(), s.clone());
                            relays.spawn(async move {
                                let mut b = vec![0u8; 65535];
                                // Replies go back until the client and container are idle.
                                while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, s2.recv(&mut b)).await {
                                    let _ = front.send_to(&b[..n], client).await;
                                }
                                sessions.lock().remove(&client);
                            });
                            s
                        }
                    };
                    let _ = back.send(&buf[..n]).await;
                }
                Some(_) = relays.join_next(), if !relays.is_empty() => {}
            }
        }
    });
    Ok((port, task))
}

/// `NetworkSettings.Ports`: every exposed or published port, with its host bindings
/// (`null` when only exposed).
pub fn ports_map(bound: &[Bound], exposed: &[String]) -> PortMap {
    let mut m = PortMap::new();
    for e in exposed {
        if let Ok((p, proto)) = parse_port_key(e) {
            m.insert(format!("{p}/{}", proto.name()), None);
        }
    }
    for b in bound {
        let key = format!("{}/{}", b.container_port, b.proto.name());
        let entry = PortBinding {
            host_ip: Some(b.host_ip.to_string()),
            host_port: Some(b.host_port.to_string()),
        };
        m.entry(key)
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(entry);
    }
    m
}

/// `docker ps`'s `Ports` entries.
pub fn summary(bound: &[Bound]) -> Vec<Port> {
    bound
        .iter()
        .map(|b| Port {
            ip: Some(b.host_ip.to_string()),
            private_port: b.container_port,
            public_port: Some(b.host_port),
            typ: b.proto.name().parse().ok(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::SameNamespace;
    use super::*;
    use docker_api::models::PortBinding;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pb(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }
    }

    #[test]
    fn every_p_form_parses_and_bad_ones_say_what_is_wrong() {
        let mut m: PortMap = HashMap::new();
        m.insert(
            "80/tcp".into(),
            Some(vec![pb("127.0.0.1", "8080"), pb("", "")]),
        );
        m.insert("53/udp".into(), Some(vec![pb("", "5353")]));
        m.insert("90".into(), Some(vec![pb("", "9000-9010")]));
        m.insert("7/tcp".into(), None);
        let b = bindings(Some(&m), true, &["443/tcp".into(), "80/tcp".into()]).unwrap();
        let got: Vec<(String, (u16, u16), u16, Proto)> = b
            .iter()
            .map(|b| {
                (
                    b.host_ip.to_string(),
                    b.host_ports,
                    b.container_port,
                    b.proto,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("0.0.0.0".to_string(), (5353, 5353), 53, Proto::Udp),
                ("127.0.0.1".to_string(), (8080, 8080), 80, Proto::Tcp),
                ("0.0.0.0".to_string(), (0, 0), 80, Proto::Tcp),
                ("0.0.0.0".to_string(), (9000, 9010), 90, Proto::Tcp),
                ("0.0.0.0".to_string(), (0, 0), 443, Proto::Tcp),
            ]
        );
        for (key, ip, port, want) in [
            ("80/sctp", "", "1", "sctp"),
            ("80/xyz", "", "1", "invalid proto"),
            ("0/tcp", "", "1", "invalid port"),
            ("http", "", "1", "invalid port"),
            ("80", "300.1.1.1", "1", "invalid IP"),
            ("80", "", "70000", "invalid host port"),
            ("80", "", "20-10", "invalid host port"),
        ] {
            let mut m: PortMap = HashMap::new();
            m.insert(key.into(), Some(vec![pb(ip, port)]));
            let e = bindings(Some(&m), false, &[]).unwrap_err();
            assert!(e.to_string().contains(want), "{key}: {e}");
        }
    }

    async fn echo_server() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        at
    }

    fn tcp(container_port: u16) -> Binding {
        Binding {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_ports: (0, 0),
            container_port,
            proto: Proto::Tcp,
        }
    }

    #[tokio::test]
    async fn tcp_forwards_big_transfers_and_half_close_then_stops_on_unpublish() {
        let echo = echo_server().await;
        let p = Publisher::new(Arc::new(SameNamespace));
        let bound = p
            .publish("c1", "web", Ipv4Addr::LOCALHOST, &[tcp(echo.port())])
            .await
            .unwrap();
        let at = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound[0].host_port);
        let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let (mut r, mut w) = s.split();
        let send = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap(); // half-close: the reply still comes
        };
        let mut back = Vec::new();
        let recv = r.read_to_end(&mut back);
        let (_, n) = tokio::join!(send, recv);
        n.unwrap();
        assert!(
            back == data,
            "{} of {} bytes came back intact",
            back.len(),
            data.len()
        );
        // A live connection, then unpublish: it closes, and nothing listens any more.
        let mut live = tokio::net::TcpStream::connect(at).await.unwrap();
        live.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        live.read_exact(&mut one).await.unwrap();
        p.unpublish("c1");
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), live.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(tokio::net::TcpStream::connect(at).await.is_err());
        assert!(p.bound("c1").is_empty());
    }

    #[tokio::test]
    async fn conflicts_get_dockerds_words_and_leave_nothing_half_published() {
        let echo = echo_server().await;
        let p = Publisher::new(Arc::new(SameNamespace));
        let first = p
            .publish("c1", "one", Ipv4Addr::LOCALHOST, &[tcp(echo.port())])
            .await
            .unwrap();
        let port = first[0].host_port;
        let fixed = |port| Binding {
            host_ports: (port, port),
            ..tcp(echo.port())
        };
        let e = p
            .publish("c2", "two", Ipv4Addr::LOCALHOST, &[fixed(port)])
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "Bind for 127.0.0.1:{port} failed: port is already allocated"
            )),
            "{e}"
        );
        assert!(
            e.to_string().starts_with(
                "driver failed programming external connectivity on endpoint two (c2)"
            ),
            "{e}"
        );
        // A port some other process holds: the userland proxy's bind error, and the
        // binding made before it in the same request is taken back.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let held = other.local_addr().unwrap().port();
        let e = p
            .publish(
                "c3",
                "three",
                Ipv4Addr::LOCALHOST,
                &[tcp(echo.port()), fixed(held)],
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "listen tcp4 127.0.0.1:{held}: bind: address already in use"
            )),
            "{e}"
        );
        assert!(p.bound("c3").is_empty());
        // A host range skips the taken port.
        let b = p
            .publish(
                "c4",
                "four",
                Ipv4Addr::LOCALHOST,
                &[Binding {
                    host_ports: (port, port.saturating_add(3)),
                    ..tcp(echo.port())
                }],
            )
            .await
            .unwrap();
        assert_ne!(b[0].host_port, port);
    }

    #[tokio::test]
    async fn udp_round_trips_for_two_clients() {
        let srv = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let srv_at = srv.local_addr().unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 1500];
            while let Ok((n, peer)) = srv.recv_from(&mut b).await {
                let mut reply = b"re:".to_vec();
                reply.extend_from_slice(&b[..n]);
                let _ = srv.send_to(&reply, peer).await;
            }
        });
        let p = Publisher::new(Arc::new(SameNamespace));
        let bound = p
            .publish(
                "u",
                "u",
                Ipv4Addr::LOCALHOST,
                &[Binding {
                    proto: Proto::Udp,
                    ..tcp(srv_at.port())
                }],
            )
            .await
            .unwrap();
        let at = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound[0].host_port);
        for msg in [&b"a"[..], b"bb"] {
            let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.send_to(msg, at).await.unwrap();
            let mut b = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b[..n], [b"re:", msg].concat());
        }
    }

    #[test]
    fn rendering_for_inspect_and_ps() {
        let b = vec![Bound {
            host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
        }];
        let m = ports_map(&b, &["80/tcp".into(), "443/tcp".into()]);
        assert_eq!(
            m["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert!(m["443/tcp"].is_none());
        assert_eq!(summary(&b)[0].public_port, Some(8080));
    }
}
