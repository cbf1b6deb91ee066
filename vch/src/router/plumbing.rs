//! The VCH's legs on its networks and the packet rules around them, inside the network
//! namespace of the port groups' bridges: each network's gateway address on its bridge,
//! forwarding to the uplink (outbound NAT) for networks that are not `--internal`, and
//! nothing between networks. The whole nftables table is written at once from the set of
//! networks, so a VCH restart or a removed network converges to the same rules.

use super::netns::Netns;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// One network as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub internal: bool,
}

/// The nftables table `inet vch` for these legs, leaving through `uplink`.
///
/// - forward: replies pass; a bridge to itself passes (if the host has br_netfilter, bridged
///   frames reach this hook); non-internal bridges may go out of the uplink; the rest
///   (network to network, uplink to network) is dropped.
/// - input (the router itself): replies, DNS and ping from the networks pass; anything else
///   a container sends to the router is dropped, so container root cannot reach other
///   services the VCH runs on that side.
/// - postrouting: what leaves by the uplink is masqueraded.
pub fn ruleset(legs: &[Leg], uplink: &str) -> String {
    let q = |b: &str| format!("\"{b}\"");
    let all: Vec<String> = legs.iter().map(|l| q(&l.bridge)).collect();
    let out: Vec<String> = legs
        .iter()
        .filter(|l| !l.internal)
        .map(|l| q(&l.bridge))
        .collect();
    let mut r = String::new();
    // Declaring the table first makes the delete succeed on a fresh namespace.
    r.push_str("table inet vch {}\ndelete table inet vch\ntable inet vch {\n");
    r.push_str("  chain forward {\n    type filter hook forward priority 0; policy drop;\n");
    r.push_str("    ct state established,related accept\n");
    for l in legs {
        r.push_str(&format!(
            "    iifname {b} oifname {b} accept\n",
            b = q(&l.bridge)
        ));
    }
    if !out.is_empty() {
        r.push_str(&format!(
            "    iifname {{ {} }} oifname {} accept\n",
            out.join(", "),
            q(uplink)
        ));
    }
    r.push_str("  }\n");
    r.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
    if !all.is_empty() {
        let set = format!("{{ {} }}", all.join(", "));
        r.push_str(&format!(
            "    iifname {set} ct state established,related accept\n"
        ));
        r.push_str(&format!("    iifname {set} udp dport 53 accept\n"));
        r.push_str(&format!("    iifname {set} tcp dport 53 accept\n"));
        r.push_str(&format!(
            "    iifname {set} icmp type echo-request accept\n"
        ));
        r.push_str(&format!("    iifname {set} drop\n"));
    }
    r.push_str("  }\n");
    r.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n",
    );
    r.push_str(&format!("    oifname {} masquerade\n", q(uplink)));
    r.push_str("  }\n}\n");
    r
}

/// The legs and rules of one VCH.
pub struct Plumbing {
    ns: Arc<Netns>,
    uplink: String,
    legs: Mutex<BTreeMap<String, Leg>>,
}

impl Plumbing {
    /// Turns forwarding on inside the namespace (only there: the sysctl is per
    /// namespace) and writes the empty rule set.
    pub fn new(ns: Arc<Netns>, uplink: &str) -> io::Result<Plumbing> {
        ns.run(|| {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
            // Frames within one network stay on its bridge: they need no packet filter
            // or connection tracking (br_netfilter, if the host loaded it, would send
            // them through both). Per namespace since Linux 5.3; absent without it.
            for f in [
                "bridge-nf-call-iptables",
                "bridge-nf-call-ip6tables",
                "bridge-nf-call-arptables",
            ] {
                let _ = std::fs::write(format!("/proc/sys/net/bridge/{f}"), "0");
            }
            Ok(())
        })?;
        let p = Plumbing {
            ns,
            uplink: uplink.to_string(),
            legs: Mutex::new(BTreeMap::new()),
        };
        p.apply()?;
        Ok(p)
    }

    fn apply(&self) -> io::Result<()> {
        let legs: Vec<Leg> = self.legs.lock().values().cloned().collect();
        self.ns
            .command("nft", &["-f", "-"], Some(&ruleset(&legs, &self.uplink)))
            .map(|_| ())
    }

    /// The network's gateway address on its bridge, the bridge up, the rules redone.
    pub fn add(&self, leg: Leg) -> io::Result<()> {
        let cidr = format!("{}/{}", leg.gateway, leg.prefix);
        self.ns
            .command("ip", &["addr", "replace", &cidr, "dev", &leg.bridge], None)?;
        self.ns
            .command("ip", &["link", "set", &leg.bridge, "up"], None)?;
        self.legs.lock().insert(leg.bridge.clone(), leg);
        self.apply()
    }

    /// Forgets a network's leg (its bridge goes with its port group).
    pub fn remove(&self, bridge: &str) -> io::Result<()> {
        let gone = self.legs.lock().remove(bridge);
        if let Some(l) = gone {
            let cidr = format!("{}/{}", l.gateway, l.prefix);
            let _ = self
                .ns
                .command("ip", &["addr", "del", &cidr, "dev", bridge], None);
        }
        self.apply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(b: &str, internal: bool) -> Leg {
        Leg {
            bridge: b.into(),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            prefix: 24,
            internal,
        }
    }

    #[test]
    fn only_non_internal_networks_go_out_and_networks_never_meet() {
        let r = ruleset(&[leg("br-a", false), leg("br-b", true)], "tap0");
        assert!(r.contains("policy drop;"), "{r}");
        assert!(
            r.contains("iifname { \"br-a\" } oifname \"tap0\" accept"),
            "{r}"
        );
        assert!(
            !r.contains("iifname { \"br-a\", \"br-b\" } oifname \"tap0\""),
            "{r}"
        );
        assert!(
            r.contains("iifname \"br-b\" oifname \"br-b\" accept"),
            "{r}"
        );
        assert!(
            !r.contains("oifname \"br-b\" accept\n    iifname \"br-a\""),
            "{r}"
        );
        assert!(
            r.contains("iifname { \"br-a\", \"br-b\" } udp dport 53 accept"),
            "{r}"
        );
        assert!(r.contains("iifname { \"br-a\", \"br-b\" } drop"), "{r}");
        assert!(r.contains("oifname \"tap0\" masquerade"), "{r}");
        // Rewritten whole: a removed network leaves no rule behind.
        assert!(r.starts_with("table inet vch {}\ndelete table inet vch\n"));
        let none = ruleset(&[], "tap0");
        assert!(
            !none.contains("br-a") && !none.contains("iifname {"),
            "{none}"
        );
    }
}
