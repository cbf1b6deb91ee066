//! The VCH's DNS server for its networks, like dockerd's embedded one: on each network's
//! gateway address (UDP and TCP 53) it answers the names of the containers running on
//! that network (name, aliases, short and full id; Compose service names are aliases),
//! and forwards every other question to upstream servers from the VCH's public side.
//! Messages are parsed and written with hickory-proto.

use super::GuestSide;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// dockerd's TTL for container names.
const TTL: u32 = 600;
/// Each upstream gets this long; all of them together at most `FORWARD_BUDGET`.
const UPSTREAM_TRY: Duration = Duration::from_millis(1500);
const FORWARD_BUDGET: Duration = Duration::from_secs(4);
/// Questions in flight per server (a container cannot make the VCH hold more).
const IN_FLIGHT: usize = 256;
/// TCP clients per server, and how long one may stay idle.
const TCP_CLIENTS: usize = 64;
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Who is on a network under which names: the lead's container table.
pub trait Directory: Send + Sync + 'static {
    /// Addresses `name` has on network `network` (names, aliases, ids), empty if unknown.
    fn lookup(&self, network: &str, name: &str) -> Vec<Ipv4Addr>;
    /// The name of the container with `ip` on `network`, for PTR.
    fn reverse(&self, network: &str, ip: Ipv4Addr) -> Option<String>;
    /// Upstream servers for queries from `client` (its --dns servers, else the VCH's).
    fn upstreams(&self, network: &str, client: Ipv4Addr) -> Vec<SocketAddr>;
}

/// The name servers of a resolv.conf, port 53. Loopback resolvers (127.0.0.53) are
/// kept: the VCH forwards from its own namespace, where they answer.
pub fn host_upstreams(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|s| s.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A running server; dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Ctx {
    network: String,
    dir: Arc<dyn Directory>,
    in_flight: Arc<Semaphore>,
}

/// Serves network `network` at `at` (made on the container side through `side`).
pub async fn serve(
    side: &dyn GuestSide,
    at: SocketAddr,
    network: String,
    dir: Arc<dyn Directory>,
) -> io::Result<DnsServer> {
    let udp = Arc::new(side.udp_bind(at)?);
    let addr = udp.local_addr()?;
    let tcp = side.tcp_listen(addr)?;
    let ctx = Arc::new(Ctx {
        network,
        dir,
        in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
    });
    let udp_task = tokio::spawn(serve_udp(udp, ctx.clone()));
    let tcp_task = tokio::spawn(serve_tcp(tcp, ctx));
    Ok(DnsServer {
        addr,
        tasks: vec![udp_task, tcp_task],
    })
}

async fn serve_udp(sock: Arc<tokio::net::UdpSocket>, ctx: Arc<Ctx>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("dns udp: {e}");
                continue;
            }
        };
        let IpAddr::V4(client) = peer.ip() else {
            continue;
        };
        // Over the cap the packet is dropped; the client's resolver retries.
        let Ok(permit) = ctx.in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let (sock, ctx, query) = (sock.clone(), ctx.clone(), buf[..n].to_vec());
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(reply) = answer(&ctx, client, &query, true).await {
                let _ = sock.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, ctx: Arc<Ctx>) {
    let clients = Arc::new(Semaphore::new(TCP_CLIENTS));
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else {
            continue;
        };
        let IpAddr::V4(client) = peer.ip() else {
            continue;
        };
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            continue; // dropped: closes the connection
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, conn.read_u16()).await else {
                    return;
                };
                let mut q = vec![0u8; len as usize];
                if conn.read_exact(&mut q).await.is_err() {
                    return;
                }
                let Some(reply) = answer(&ctx, client, &q, false).await else {
                    return; // malformed: the connection is closed
                };
                let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&reply);
                if conn.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn response_to(req: &Message) -> Message {
    let mut m = Message::new();
    m.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true);
    m.add_queries(req.queries().iter().cloned());
    if req.extensions().is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

/// The bytes to send back for `query`, or None to stay silent (unparseable input).
async fn answer(ctx: &Ctx, client: Ipv4Addr, query: &[u8], udp: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    if req.message_type() != MessageType::Query {
        return None;
    }
    let mut resp = response_to(&req);
    if req.op_code() != OpCode::Query || req.queries().len() != 1 {
        resp.set_response_code(ResponseCode::NotImp);
        return resp.to_vec().ok();
    }
    let q = &req.queries()[0];
    let name = q.name().to_lowercase().to_utf8();
    let name = name.trim_end_matches('.');
    if let Some(records) = local_answer(ctx, q.name(), name, q.query_type()) {
        resp.set_authoritative(true);
        resp.add_answers(records);
        let bytes = resp.to_vec().ok()?;
        if udp && bytes.len() > req.max_payload() as usize {
            return resp.truncate().to_vec().ok();
        }
        return Some(bytes);
    }
    let upstreams = ctx.dir.upstreams(&ctx.network, client);
    match forward(query, &upstreams, udp).await {
        Some(reply) => Some(reply),
        None => {
            resp.set_response_code(ResponseCode::ServFail);
            resp.to_vec().ok()
        }
    }
}

/// Records for a name this server owns; None when the question is not about one of
/// its containers (then it is forwarded).
fn local_answer(ctx: &Ctx, qname: &Name, name: &str, ty: RecordType) -> Option<Vec<Record>> {
    if ty == RecordType::PTR {
        let ip = match qname.parse_arpa_name().ok()?.addr() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => return None,
        };
        let owner = ctx.dir.reverse(&ctx.network, ip)?;
        let target = Name::from_ascii(format!("{owner}.")).ok()?;
        return Some(vec![Record::from_rdata(
            qname.clone(),
            TTL,
            RData::PTR(PTR(target)),
        )]);
    }
    if name.is_empty() {
        return None;
    }
    let mut addrs = ctx.dir.lookup(&ctx.network, name);
    if addrs.is_empty() {
        return None;
    }
    // Round robin, as dockerd: a fresh order per answer.
    let shift = (uuid::Uuid::new_v4().as_u128() % addrs.len() as u128) as usize;
    addrs.rotate_left(shift);
    Some(match ty {
        RecordType::A | RecordType::ANY => addrs
            .into_iter()
            .map(|ip| Record::from_rdata(qname.clone(), TTL, RData::A(A(ip))))
            .collect(),
        // Known name, no record of that type (no IPv6 here): NOERROR, no answers.
        _ => vec![],
    })
}

/// Sends the client's own question to the upstreams in turn; the first reply (with the
/// question's id) is relayed as it is. A truncated UDP reply to a TCP client is asked
/// again over TCP.
async fn forward(query: &[u8], upstreams: &[SocketAddr], udp: bool) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
    let work = async {
        for up in upstreams {
            let reply = if udp {
                tokio::time::timeout(UPSTREAM_TRY, forward_udp(query, *up, id)).await
            } else {
                tokio::time::timeout(UPSTREAM_TRY, forward_tcp(query, *up, id)).await
            };
            if let Ok(Ok(r)) = reply {
                return Some(r);
            }
        }
        None
    };
    tokio::time::timeout(FORWARD_BUDGET, work)
        .await
        .ok()
        .flatten()
}

async fn forward_udp(query: &[u8], up: SocketAddr, id: u16) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() {
        "0.0.0.0:0".parse().expect("static")
    } else {
        "[::]:0".parse().expect("static")
    };
    let s = tokio::net::UdpSocket::bind(bind).await?;
    s.connect(up).await?;
    s.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = s.recv(&mut buf).await?;
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn forward_tcp(query: &[u8], up: SocketAddr, id: u16) -> io::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(up).await?;
    let mut out = (query.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(query);
    s.write_all(&out).await?;
    let len = s.read_u16().await?;
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await?;
    if buf.len() < 2 || u16::from_be_bytes([buf[0], buf[1]]) != id {
        return Err(io::Error::other("reply to another question"));
    }
    Ok(buf)
}

/// /etc/resolv.conf of a container on a user network: the VCH's resolver at the
/// network's gateway (dockerd writes its 127.0.0.11), then `--dns-search`/`--dns-option`.
pub fn resolv_conf(nameserver: Ipv4Addr, search: &[String], options: &[String]) -> String {
    let mut s = format!("# Generated by the VCH.\nnameserver {nameserver}\n");
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::SameNamespace;
    use super::*;
    use hickory_proto::op::Query;
    use std::collections::HashMap;

    struct Table {
        names: HashMap<String, Vec<Ipv4Addr>>,
        upstreams: Vec<SocketAddr>,
    }

    impl Directory for Table {
        fn lookup(&self, network: &str, name: &str) -> Vec<Ipv4Addr> {
            assert_eq!(network, "net1");
            self.names.get(name).cloned().unwrap_or_default()
        }
        fn reverse(&self, _: &str, ip: Ipv4Addr) -> Option<String> {
            self.names
                .iter()
                .find(|(_, v)| v.contains(&ip))
                .map(|(k, _)| format!("{k}.net1"))
        }
        fn upstreams(&self, _: &str, _: Ipv4Addr) -> Vec<SocketAddr> {
            self.upstreams.clone()
        }
    }

    fn query(name: &str, ty: RecordType, id: u16) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
        m.to_vec().unwrap()
    }

    async fn ask_udp(server: SocketAddr, q: &[u8]) -> Message {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(q, server).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), s.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    }

    async fn ask_tcp(server: SocketAddr, q: &[u8]) -> Message {
        let mut s = tokio::net::TcpStream::connect(server).await.unwrap();
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(q);
        s.write_all(&out).await.unwrap();
        let len = s.read_u16().await.unwrap();
        let mut buf = vec![0u8; len as usize];
        s.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = m
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// An upstream on loopback that answers every A question with 192.0.2.53.
    async fn fake_upstream() -> (SocketAddr, JoinHandle<()>) {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = s.local_addr().unwrap();
        let t = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = s.recv_from(&mut buf).await {
                let req = Message::from_vec(&buf[..n]).unwrap();
                let mut r = response_to(&req);
                let q = req.queries()[0].name().clone();
                r.add_answer(Record::from_rdata(
                    q,
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 53))),
                ));
                let _ = s.send_to(&r.to_vec().unwrap(), peer).await;
            }
        });
        (at, t)
    }

    async fn server(names: &[(&str, &[Ipv4Addr])], upstreams: Vec<SocketAddr>) -> DnsServer {
        let table = Table {
            names: names
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
            upstreams,
        };
        serve(
            &SameNamespace,
            "127.0.0.1:0".parse().unwrap(),
            "net1".into(),
            Arc::new(table),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn container_names_answer_over_udp_and_tcp_case_and_dot_insensitive() {
        let web = Ipv4Addr::new(172, 18, 0, 2);
        let s = server(&[("web", &[web])], vec![]).await;
        let r = ask_udp(s.local_addr(), &query("WEB.", RecordType::A, 7)).await;
        assert_eq!(r.id(), 7);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(a_records(&r), [web]);
        assert_eq!(r.answers()[0].ttl(), TTL);
        let r = ask_tcp(s.local_addr(), &query("web", RecordType::A, 8)).await;
        assert_eq!(a_records(&r), [web]);
        // Known name, no IPv6: NOERROR without answers (not forwarded).
        let r = ask_udp(s.local_addr(), &query("web", RecordType::AAAA, 9)).await;
        assert_eq!(
            (r.response_code(), r.answers().len()),
            (ResponseCode::NoError, 0)
        );
        // PTR of a container address.
        let r = ask_udp(
            s.local_addr(),
            &query("2.0.18.172.in-addr.arpa.", RecordType::PTR, 10),
        )
        .await;
        assert!(matches!(r.answers()[0].data(), RData::PTR(p) if p.0.to_utf8() == "web.net1."));
    }

    #[tokio::test]
    async fn unknown_names_are_forwarded_and_dead_upstreams_give_servfail() {
        let (up, _t) = fake_upstream().await;
        let s = server(&[], vec![up]).await;
        let r = ask_udp(s.local_addr(), &query("example.org.", RecordType::A, 77)).await;
        assert_eq!(r.id(), 77);
        assert_eq!(a_records(&r), [Ipv4Addr::new(192, 0, 2, 53)]);
        // An upstream that never answers (a bound socket nobody reads): SERVFAIL in time.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = server(&[], vec![silent.local_addr().unwrap()]).await;
        let t = std::time::Instant::now();
        let r = ask_udp(s.local_addr(), &query("example.org.", RecordType::A, 78)).await;
        assert_eq!(r.response_code(), ResponseCode::ServFail);
        assert!(t.elapsed() < FORWARD_BUDGET + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn big_answers_are_truncated_over_udp_and_whole_over_tcp() {
        let many: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let s = server(&[("svc", &many)], vec![]).await;
        let r = ask_udp(s.local_addr(), &query("svc", RecordType::A, 1)).await;
        assert!(r.truncated() && r.answers().is_empty());
        let r = ask_tcp(s.local_addr(), &query("svc", RecordType::A, 2)).await;
        assert_eq!(a_records(&r), many);
    }

    #[tokio::test]
    async fn garbage_is_ignored_and_the_server_keeps_answering() {
        let web = Ipv4Addr::new(172, 18, 0, 2);
        let s = server(&[("web", &[web])], vec![]).await;
        let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        u.send_to(b"\x01\x02garbage", s.local_addr()).await.unwrap();
        let r = ask_udp(s.local_addr(), &query("web", RecordType::A, 3)).await;
        assert_eq!(a_records(&r), [web]);
    }

    #[test]
    fn upstreams_and_resolv_conf() {
        let ups = host_upstreams("# c\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch x\n");
        assert_eq!(ups[0], "127.0.0.53:53".parse().unwrap());
        assert_eq!(ups.len(), 2);
        let r = resolv_conf(
            Ipv4Addr::new(172, 18, 0, 1),
            &["a.example".into()],
            &["ndots:2".into()],
        );
        assert!(
            r.contains("nameserver 172.18.0.1\nsearch a.example\noptions ndots:2\n"),
            "{r}"
        );
    }
}
