//! One-line protocol summaries of live packets, in tcpdump's style, from
//! `etherparse`'s lax parser (truncated packets still get their outer
//! headers named).

use std::fmt::Write;
use std::net::Ipv4Addr;

use etherparse::{
    ArpPacketSlice, Icmpv4Slice, Icmpv6Slice, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket,
    LinkSlice, TcpSlice, TransportSlice,
};

/// `quiet`: tcpdump's -q (protocol and length only for TCP/UDP).
pub fn summary(data: &[u8], wirelen: u32, quiet: bool) -> String {
    let p = match LaxSlicedPacket::from_ethernet(data) {
        Ok(p) => p,
        Err(_) => return format!("[|ether], length {wirelen}"),
    };
    let mut s = vlan_tags(&p);
    let ends = match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => Ends {
            ip: "IP",
            src: ip.header().source_addr().to_string(),
            dst: ip.header().destination_addr().to_string(),
        },
        Some(LaxNetSlice::Ipv6(ip)) => Ends {
            ip: "IP6",
            src: ip.header().source_addr().to_string(),
            dst: ip.header().destination_addr().to_string(),
        },
        Some(LaxNetSlice::Arp(arp)) => {
            s += &arp_text(arp, wirelen);
            return s;
        }
        None => {
            let _ = write!(s, "ethertype 0x{:04x}, length {wirelen}", ether_type(&p));
            return s;
        }
    };
    s += &match &p.transport {
        Some(TransportSlice::Tcp(t)) => tcp_text(&ends, t, quiet),
        Some(TransportSlice::Udp(u)) => format!(
            "{}UDP, length {}",
            ends.with_ports(u.source_port(), u.destination_port()),
            u.payload().len()
        ),
        Some(TransportSlice::Icmpv4(i)) => icmp_text(&ends, i),
        Some(TransportSlice::Icmpv6(i)) => icmp6_text(&ends, i),
        Some(TransportSlice::Igmp(_)) => format!("{}igmp", ends.without_ports()),
        None => other_text(&ends, &p),
    };
    s
}

/// `vlan 5, ` for each VLAN tag.
fn vlan_tags(p: &LaxSlicedPacket) -> String {
    let mut s = String::new();
    for ext in &p.link_exts {
        if let LaxLinkExtSlice::Vlan(v) = ext {
            let _ = write!(s, "vlan {}, ", v.vlan_identifier().value());
        }
    }
    s
}

/// The ethertype after the VLAN tags, if any.
fn ether_type(p: &LaxSlicedPacket) -> u16 {
    let ether_type = match &p.link {
        Some(LinkSlice::Ethernet2(e)) => e.ether_type().0,
        _ => 0,
    };
    p.link_exts
        .iter()
        .filter_map(|e| match e {
            LaxLinkExtSlice::Vlan(v) => Some(v.ether_type().0),
            _ => None,
        })
        .next_back()
        .unwrap_or(ether_type)
}

fn arp_text(arp: &ArpPacketSlice, wirelen: u32) -> String {
    let length = wirelen.saturating_sub(14);
    match arp.to_packet().try_eth_ipv4() {
        Ok(a) if a.operation.0 == 1 => format!(
            "ARP, Request who-has {} tell {}, length {length}",
            Ipv4Addr::from(a.target_ipv4),
            Ipv4Addr::from(a.sender_ipv4),
        ),
        Ok(a) if a.operation.0 == 2 => format!(
            "ARP, Reply {} is-at {}, length {length}",
            Ipv4Addr::from(a.sender_ipv4),
            mac(&a.sender_mac),
        ),
        _ => format!("ARP, length {length}"),
    }
}

/// The IP version's word and the two addresses.
struct Ends {
    ip: &'static str,
    src: String,
    dst: String,
}

impl Ends {
    /// `IP 10.0.0.1.40456 > 10.0.0.2.443: `
    fn with_ports(&self, src: u16, dst: u16) -> String {
        format!("{} {}.{src} > {}.{dst}: ", self.ip, self.src, self.dst)
    }

    /// `IP 10.0.0.1 > 10.0.0.2: `
    fn without_ports(&self) -> String {
        format!("{} {} > {}: ", self.ip, self.src, self.dst)
    }
}

/// `Flags [S.], seq 1, ack 2, win 3, length 4`, or `tcp 4` with -q.
fn tcp_text(ends: &Ends, t: &TcpSlice, quiet: bool) -> String {
    let mut s = ends.with_ports(t.source_port(), t.destination_port());
    if quiet {
        let _ = write!(s, "tcp {}", t.payload().len());
        return s;
    }
    let mut flags: String = [
        (t.syn(), 'S'),
        (t.fin(), 'F'),
        (t.psh(), 'P'),
        (t.rst(), 'R'),
        (t.urg(), 'U'),
        (t.ack(), '.'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|&(_, c)| c)
    .collect();
    if flags.is_empty() {
        flags.push_str("none");
    }
    let _ = write!(s, "Flags [{flags}], seq {}, ", t.sequence_number());
    if t.ack() {
        let _ = write!(s, "ack {}, ", t.acknowledgment_number());
    }
    let _ = write!(s, "win {}, length {}", t.window_size(), t.payload().len());
    s
}

fn icmp_text(ends: &Ends, i: &Icmpv4Slice) -> String {
    let mut s = format!("{}ICMP ", ends.without_ports());
    let b = i.bytes5to8();
    let id = u16::from_be_bytes([b[0], b[1]]);
    let seq = u16::from_be_bytes([b[2], b[3]]);
    match i.type_u8() {
        8 => {
            let _ = write!(s, "echo request, id {id}, seq {seq}, ");
        }
        0 => {
            let _ = write!(s, "echo reply, id {id}, seq {seq}, ");
        }
        3 => s.push_str("unreachable, "),
        11 => s.push_str("time exceeded, "),
        t => {
            let _ = write!(s, "type {t}, ");
        }
    }
    let _ = write!(s, "length {}", i.slice().len());
    s
}

fn icmp6_text(ends: &Ends, i: &Icmpv6Slice) -> String {
    let name = match i.type_u8() {
        128 => "echo request",
        129 => "echo reply",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        143 => "multicast listener report v2",
        _ => "",
    };
    let what = if name.is_empty() {
        format!("type {}", i.type_u8())
    } else {
        name.to_owned()
    };
    format!(
        "{}ICMP6, {what}, length {}",
        ends.without_ports(),
        i.slice().len()
    )
}

/// Another IP protocol: its number, and whether the packet was cut.
fn other_text(ends: &Ends, p: &LaxSlicedPacket) -> String {
    let proto = match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => ip.payload_ip_number().0,
        Some(LaxNetSlice::Ipv6(ip)) => ip.payload().ip_number.0,
        _ => 0,
    };
    let mut s = format!("{}ip-proto-{proto}", ends.without_ports());
    if p.stop_err.is_some() {
        s.push_str(" [|truncated]");
    }
    s
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
