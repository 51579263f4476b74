//! tcpdump filter expressions from a grammar, with the packets to run them
//! on. Constants (addresses, ports, protocol numbers) come from small pools
//! shared with [`crate::packet`], so that expressions match often enough
//! for both outcomes to be exercised. No host or service *names* are ever
//! generated (libpcap would resolve them), except a few from /etc/services.

use cbpf2ebpf::libpcap;

use crate::packet::{self, Packet};
use crate::Src;

/// One `expr` test case.
#[derive(Clone, Debug)]
pub struct Case {
    pub expr: String,
    pub linktype: i32,
    pub snaplen: u32,
    pub packets: Vec<Packet>,
}

impl Case {
    pub fn generate(s: &mut Src) -> Case {
        let linktype = if s.chance(32) {
            libpcap::DLT_RAW
        } else {
            libpcap::DLT_EN10MB
        };
        let snaplen = *s.pick(&[libpcap::DEFAULT_SNAPLEN, 65535, 96, 68, 1, 262143]);
        let expr = expr(s, 3);
        let n = 1 + s.below(4);
        let packets = (0..n).map(|_| packet::packet(s, linktype)).collect();
        Case {
            expr,
            linktype,
            snaplen,
            packets,
        }
    }
}

/// An expression of at most `depth` levels of and/or/not/parentheses.
pub fn expr(s: &mut Src, depth: u32) -> String {
    if depth == 0 {
        return primitive(s);
    }
    match s.below(10) {
        0..=3 => primitive(s),
        4 => format!(
            "{} {} {}",
            expr(s, depth - 1),
            s.pick(&["and", "&&"]),
            expr(s, depth - 1)
        ),
        5 => format!(
            "{} {} {}",
            expr(s, depth - 1),
            s.pick(&["or", "||"]),
            expr(s, depth - 1)
        ),
        6 => format!("{} {}", s.pick(&["not", "!"]), expr(s, depth - 1)),
        7 => format!("({})", expr(s, depth - 1)),
        // vlan/mpls change the offsets of everything after them.
        8 => format!("{} and {}", encap(s), expr(s, depth - 1)),
        _ => relation(s, 2),
    }
}

fn encap(s: &mut Src) -> String {
    match s.below(6) {
        0 => "vlan".into(),
        1 => format!("vlan {}", vlan_id(s)),
        2 => "mpls".into(),
        3 => format!("mpls {}", mpls_label(s)),
        4 => "pppoes".into(),
        _ => format!("pppoes {}", s.pick(&[0u32, 1, 0x1234, 65535])),
    }
}

fn vlan_id(s: &mut Src) -> u32 {
    *s.pick(&[0, 1, 100, 4095, 4096, 2])
}

fn mpls_label(s: &mut Src) -> u32 {
    *s.pick(&[0, 100, 1_048_575, 1_048_576, 16])
}

const PROTOS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "igmp",
    "sctp",
    "vlan",
    "mpls",
    "pppoes",
    "pppoed",
    "llc",
    "stp",
    "ipx",
    "decnet",
    "atalk",
    "aarp",
    "iso",
    "isis",
    "netbeui",
    "ah",
    "esp",
    "pim",
    "vrrp",
    "carp",
    "igrp",
    "geneve",
    "ether broadcast",
    "ether multicast",
    "ip multicast",
    "ip6 multicast",
    "inbound",
    "outbound",
    "ip broadcast",
    "lat",
    "sca",
    "mopdl",
    "moprc",
    "ip and tcp",
    "ip6 and udp",
    "llc i",
    "llc s",
    "llc u",
    "llc rr",
    "iso proto \\isis",
    "ifindex 1",
];

const DIRS: &[&str] = &["", "src ", "dst ", "src or dst ", "src and dst "];

fn primitive(s: &mut Src) -> String {
    match s.below(13) {
        0 => s.pick(PROTOS).to_string(),
        1 | 2 => host(s),
        3 => net(s),
        4 | 5 => port(s),
        6 => {
            let n = *s.pick(&[0u32, 20, 40, 54, 60, 64, 100, 1500, 65535]);
            format!(
                "{} {n}",
                s.pick(&["len <=", "len >=", "less", "greater", "len ==", "len <", "len >"])
            )
        }
        7 => proto_number(s),
        8 => encap(s),
        9 | 10 => relation(s, 2),
        11 => s
            .pick(&[
                "tcp[tcpflags] & tcp-syn != 0",
                "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
                "tcp[tcpflags] & (tcp-fin|tcp-rst|tcp-push|tcp-urg|tcp-ece|tcp-cwr) != 0",
                "icmp[icmptype] == icmp-echo",
                "icmp[icmptype] != icmp-echoreply and icmp[icmpcode] = 0",
                "icmp6[icmp6type] = icmp6-echo",
                "icmp6[icmp6code] != 0",
                "ip[6:2] & 0x1fff = 0",
                "ip6[6] = 58",
                "ether[0] & 1 != 0",
                "udp[8:2] = 0x1234",
                "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
            ])
            .to_string(),
        _ => format!(
            "{} {}",
            s.pick(&["ip6 protochain", "ip protochain", "protochain"]),
            ip_proto(s)
        ),
    }
}

fn v4(s: &mut Src) -> String {
    match s.below(8) {
        7 => {
            let b = [s.byte(), s.byte(), s.byte(), s.byte()];
            format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
        }
        i => packet::V4[i]
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("."),
    }
}

fn v6(s: &mut Src) -> String {
    s.pick(&[
        "::1",
        "fe80::1",
        "fe80::2",
        "2001:db8::1",
        "ff02::1",
        "::",
        "::ffff:10.0.0.1",
        "2001:db8:0:0:0:0:0:2",
    ])
    .to_string()
}

fn mac(s: &mut Src) -> String {
    let m = if s.chance(32) {
        [s.byte(), s.byte(), s.byte(), s.byte(), s.byte(), s.byte()]
    } else {
        *s.pick(packet::MACS)
    };
    let sep = *s.pick(&[":", "-", "."]);
    if sep == "." {
        format!(
            "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    } else {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

fn host(s: &mut Src) -> String {
    let dir = *s.pick(DIRS);
    match s.below(8) {
        0 | 1 => format!("{dir}host {}", v4(s)),
        2 => format!("ip {dir}host {}", v4(s)),
        3 => format!("{}{dir}host {}", s.pick(&["", "ip6 "]), v6(s)),
        4 => format!("ether {dir}host {}", mac(s)),
        5 => format!("ether {}{}", s.pick(&["src ", "dst "]), mac(s)),
        6 => format!("{} {dir}host {}", s.pick(&["arp", "rarp"]), v4(s)),
        // The omitted-keyword form: `host a or b`.
        _ => format!("{dir}host {} {} {}", v4(s), s.pick(&["or", "and"]), v4(s)),
    }
}

fn net(s: &mut Src) -> String {
    let dir = *s.pick(DIRS);
    let n = match s.below(14) {
        0 => "10.0.0.0/8".to_string(),
        1 => "192.168.1.0/24".into(),
        2 => "10.0.0.1/32".into(),
        3 => "10.0.0".into(),
        4 => "224.0.0.0/4".into(),
        5 => "0.0.0.0/0".into(),
        6 => "10.0.0.0 mask 255.0.0.0".into(),
        7 => "fe80::/10".into(),
        8 => "2001:db8::/32".into(),
        9 => "::/0".into(),
        10 => "::1/128".into(),
        11 => "192.168".into(),
        12 => format!("{}/{}", v4(s), s.below(33)),
        _ => format!("{}/{}", v6(s), s.below(129)),
    };
    format!("{}{dir}net {n}", s.pick(&["", "ip ", "ip6 "]))
}

fn port_number(s: &mut Src) -> String {
    match s.below(10) {
        9 => s.u16().to_string(),
        8 => s.pick(&["http", "domain", "ssh"]).to_string(),
        i => packet::PORTS[i % packet::PORTS.len()].to_string(),
    }
}

fn port(s: &mut Src) -> String {
    let proto = *s.pick(&["", "tcp ", "udp ", "sctp ", "ip ", "ip6 ", "ip6 tcp "]);
    let dir = *s.pick(DIRS);
    match s.below(4) {
        0 | 1 => format!("{proto}{dir}port {}", port_number(s)),
        2 => {
            let a = port_number(s);
            let b = port_number(s);
            format!("{proto}{dir}portrange {a}-{b}")
        }
        _ => format!("{proto}{dir}port {} or {}", port_number(s), port_number(s)),
    }
}

fn ip_proto(s: &mut Src) -> String {
    match s.below(12) {
        11 => s.byte().to_string(),
        10 => s.pick(&["\\tcp", "\\udp", "\\icmp"]).to_string(),
        i => [6u32, 17, 1, 58, 2, 132, 0, 43, 44, 60][i].to_string(),
    }
}

fn proto_number(s: &mut Src) -> String {
    match s.below(5) {
        0 => format!("ip proto {}", ip_proto(s)),
        1 => format!("ip6 proto {}", ip_proto(s)),
        2 => format!("proto {}", ip_proto(s)),
        3 => format!(
            "ether proto {}",
            s.pick(&[
                "0x800", "0x86dd", "0x806", "0x8100", "\\ip", "\\arp", "\\ip6", "0x8847", "100",
                "0x8864"
            ])
        ),
        _ => format!(
            "{} {}",
            s.pick(&["ip6 protochain", "ip protochain"]),
            ip_proto(s)
        ),
    }
}

/// `arith relop arith`.
pub fn relation(s: &mut Src, depth: u32) -> String {
    let op = *s.pick(&["=", "==", "!=", ">", "<", ">=", "<="]);
    format!("{} {op} {}", arith(s, depth), arith(s, depth))
}

const ACCESS_PROTOS: &[&str] = &[
    "ether", "ip", "tcp", "udp", "icmp", "ip6", "icmp6", "link", "arp", "rarp", "igmp", "sctp",
    "pim", "vrrp",
];

fn number(s: &mut Src) -> String {
    let n: u32 = match s.below(8) {
        0 => s.byte() as u32 % 16,
        1 => s.byte() as u32,
        2 => *s.pick(&[0x45, 6, 17, 0x800, 0x86dd, 1500, 31, 32, 33]),
        3 => s.u32(),
        4 => *s.pick(&[0xffff_ffff, 0x8000_0000, 0x7fff_ffff, 65535, 65536]),
        _ => s.byte() as u32 % 64,
    };
    if s.chance(48) {
        format!("{n:#x}")
    } else {
        n.to_string()
    }
}

/// An arithmetic expression of at most `depth` operator levels.
pub fn arith(s: &mut Src, depth: u32) -> String {
    let choice = if depth == 0 { s.below(3) } else { s.below(9) };
    match choice {
        0 => number(s),
        1 => access(s, 0),
        2 => s
            .pick(&[
                "len",
                "tcpflags",
                "icmptype",
                "icmpcode",
                "icmp6type",
                "icmp6code",
                "tcp-syn",
                "tcp-ack",
                "icmp-echo",
                "icmp-unreach",
                "icmp6-echo",
            ])
            .to_string(),
        3 | 4 => access(s, depth - 1),
        5 | 6 => {
            let op = *s.pick(&["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^"]);
            let (a, b) = (arith(s, depth - 1), arith(s, depth - 1));
            if s.chance(128) {
                format!("({a} {op} {b})")
            } else {
                format!("{a} {op} {b}")
            }
        }
        7 => format!("-{}", arith(s, depth - 1)),
        _ => format!("({})", arith(s, depth - 1)),
    }
}

fn access(s: &mut Src, depth: u32) -> String {
    let proto = *s.pick(ACCESS_PROTOS);
    let index = if depth == 0 || s.chance(160) {
        (s.byte() as u32 % 48).to_string()
    } else {
        arith(s, depth)
    };
    let size = *s.pick(&["", ":1", ":2", ":4", ":3"]);
    format!("{proto}[{index}{size}]")
}
