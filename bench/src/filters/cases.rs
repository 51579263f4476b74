//! The benchmark filters (the issue's, a 100-term host list and an
//! unrolled protochain) and their test packets.

use crate::packets::*;

/// One benchmark filter.
pub struct Case {
    pub expr: String,
    /// Short label for tables (the 100-term list is long).
    pub label: String,
    pub matching: Vec<u8>,
    /// Function in bench/c/filters.c, if there is a C baseline.
    pub c_fn: Option<&'static str>,
    /// cloudflare/cbpfc's figures from the issue: eBPF instructions from its
    /// eBPF backend, clang -O2 on its C backend.
    pub cbpfc: Option<(u32, u32)>,
}

const HOST: [u8; 4] = [10, 0, 0, 1];
const PEER: [u8; 4] = [10, 0, 0, 2];

pub fn cases() -> Vec<Case> {
    let hosts: Vec<String> = (1..=100).map(|i| format!("host 10.1.0.{i}")).collect();
    let c = |expr: &str,
             matching: Vec<u8>,
             c_fn: Option<&'static str>,
             cbpfc: Option<(u32, u32)>| Case {
        expr: expr.to_string(),
        label: format!("`{expr}`"),
        matching,
        c_fn,
        cbpfc,
    };
    vec![
        c(
            "tcp port 443 and tcp[13]&8!=0",
            tcp4(PEER, HOST, 40000, 443, 0x18),
            Some("c_readme"),
            Some((39, 29)),
        ),
        c(
            "tcp port 443",
            tcp4(PEER, HOST, 40000, 443, 0x18),
            Some("c_tcp443"),
            Some((60, 48)),
        ),
        c(
            "host 10.0.0.1 and udp",
            udp4(HOST, PEER, 40000, 5000),
            Some("c_host_udp"),
            Some((23, 18)),
        ),
        c(
            "vlan and tcp",
            vlan_tcp4(5, PEER, HOST, 40000, 80, 0x10),
            None,
            Some((32, 32)),
        ),
        c(
            "tcp[tcpflags] & tcp-syn != 0",
            tcp4(PEER, HOST, 40000, 80, 0x02),
            Some("c_syn"),
            Some((32, 25)),
        ),
        c(
            "icmp or arp",
            icmp4(PEER, HOST),
            Some("c_icmp_arp"),
            Some((19, 17)),
        ),
        c(
            "ip[0] & 0xf > 5",
            udp4_opt(PEER, HOST, 40000, 5000),
            Some("c_ihl"),
            Some((15, 12)),
        ),
        c(
            "udp and not port 53",
            udp4(HOST, PEER, 40000, 5000),
            None,
            Some((55, 48)),
        ),
        Case {
            expr: hosts.join(" or "),
            label: "`host 10.1.0.1 or ... or host 10.1.0.100` (100 terms)".into(),
            matching: udp4(PEER, [10, 1, 0, 100], 40000, 5000),
            c_fn: None,
            cbpfc: None,
        },
        c("ip6 protochain 6", tcp6_hbh(40000, 443, 0x18), None, None),
    ]
}

/// The packet no benchmark filter matches: a DNS query over IPv4 between
/// two addresses none of them names.
pub fn nonmatching() -> Vec<u8> {
    udp4([192, 168, 1, 1], [192, 168, 1, 2], 5353, 53)
}
