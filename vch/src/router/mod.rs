//! The VCH as the router of its networks: every Docker network is a port group, and the
//! VCH has a leg on each one (the network's gateway address). Through those legs it
//! answers DNS for container names (`dns`), forwards published ports from its public
//! side to container addresses (`ports`), and NATs containers' outbound traffic to its
//! public side unless a network is `--internal` (`plumbing`, `outbound`).
//!
//! In the embedded mode the legs live in the simulator's network namespace (where the
//! port groups' bridges are), which `netns` enters to open sockets; on an appliance they
//! are the appliance VM's own NICs. The rest of the router only sees [`GuestSide`].

pub mod dns;
pub mod netns;
pub mod outbound;
pub mod plumbing;
pub mod ports;
pub mod service;

use std::io;
use std::net::SocketAddr;

/// Opens sockets on the container side of the VCH: on its legs in the networks, where
/// container addresses are reachable. Sockets are bound to a network namespace when they
/// are made, so the returned tokio sockets can be used from any task afterwards.
pub trait GuestSide: Send + Sync + 'static {
    /// An unconnected TCP socket on the container side (`connect` it to a container).
    fn tcp_socket(&self) -> io::Result<tokio::net::TcpSocket>;
    /// A TCP listener on the container side (e.g. DNS over TCP on a gateway address).
    fn tcp_listen(&self, at: SocketAddr) -> io::Result<tokio::net::TcpListener>;
    /// A UDP socket on the container side bound to `at` (port 0: any).
    fn udp_bind(&self, at: SocketAddr) -> io::Result<tokio::net::UdpSocket>;
}

/// The container side is the VCH's own network namespace: for unit tests on loopback,
/// and for a VCH whose legs are its own interfaces (the appliance).
pub struct SameNamespace;

impl GuestSide for SameNamespace {
    fn tcp_socket(&self) -> io::Result<tokio::net::TcpSocket> {
        tokio::net::TcpSocket::new_v4()
    }
    fn tcp_listen(&self, at: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let s = if at.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        s.set_reuseaddr(true)?;
        s.bind(at)?;
        s.listen(1024)
    }
    fn udp_bind(&self, at: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
        let s = std::net::UdpSocket::bind(at)?;
        s.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(s)
    }
}

/// Where the VCH's legs on its networks are: a network namespace holding one Linux
/// bridge per port group (the embedded simulator's).
pub trait Legs: Send + Sync + 'static {
    fn netns_path(&self) -> std::path::PathBuf;
    /// The bridge of a port group, made if needed.
    fn bridge(&self, portgroup: &str) -> io::Result<String>;
}
