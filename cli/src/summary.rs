//! One-line protocol summaries of live packets, in tcpdump's style, from
//! `etherparse`'s lax parser (truncated packets still get their outer
//! headers named).

use std::fmt::Write;

use etherparse::{LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};

/// `quiet`: tcpdump's -q (protocol and length only for TCP/UDP).
pub fn summary(data: &[u8], wirelen: u32, quiet: bool) -> String {
    let mut s = String::new();
    let p = match LaxSlicedPacket::from_ethernet(data) {
        Ok(p) => p,
        Err(_) => return format!("[|ether], length {wirelen}"),
    };
    for ext in &p.link_exts {
        if let LaxLinkExtSlice::Vlan(v) = ext {
            let _ = write!(s, "vlan {}, ", v.vlan_identifier().value());
        }
    }
    let ip_prefix;
    let (src, dst) = match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            ip_prefix = "IP";
            (
                ip.header().source_addr().to_string(),
                ip.header().destination_addr().to_string(),
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            ip_prefix = "IP6";
            (
                ip.header().source_addr().to_string(),
                ip.header().destination_addr().to_string(),
            )
        }
        Some(LaxNetSlice::Arp(arp)) => {
            match arp.to_packet().try_eth_ipv4() {
                Ok(a) if a.operation.0 == 1 => {
                    let _ = write!(
                        s,
                        "ARP, Request who-has {} tell {}, length {}",
                        std::net::Ipv4Addr::from(a.target_ipv4),
                        std::net::Ipv4Addr::from(a.sender_ipv4),
                        wirelen.saturating_sub(14)
                    );
                }
                Ok(a) if a.operation.0 == 2 => {
                    let _ = write!(
                        s,
                        "ARP, Reply {} is-at {}, length {}",
                        std::net::Ipv4Addr::from(a.sender_ipv4),
                        mac(&a.sender_mac),
                        wirelen.saturating_sub(14)
                    );
                }
                _ => {
                    let _ = write!(s, "ARP, length {}", wirelen.saturating_sub(14));
                }
            }
            return s;
        }
        None => {
            let ether_type = match &p.link {
                Some(LinkSlice::Ethernet2(e)) => e.ether_type().0,
                _ => 0,
            };
            let ether_type = p
                .link_exts
                .iter()
                .filter_map(|e| match e {
                    LaxLinkExtSlice::Vlan(v) => Some(v.ether_type().0),
                    _ => None,
                })
                .next_back()
                .unwrap_or(ether_type);
            let _ = write!(s, "ethertype 0x{ether_type:04x}, length {wirelen}");
            return s;
        }
    };
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let _ = write!(
                s,
                "{ip_prefix} {src}.{} > {dst}.{}: ",
                t.source_port(),
                t.destination_port()
            );
            if quiet {
                let _ = write!(s, "tcp {}", t.payload().len());
            } else {
                let mut flags = String::new();
                for (on, c) in [
                    (t.syn(), 'S'),
                    (t.fin(), 'F'),
                    (t.psh(), 'P'),
                    (t.rst(), 'R'),
                    (t.urg(), 'U'),
                    (t.ack(), '.'),
                ] {
                    if on {
                        flags.push(c);
                    }
                }
                if flags.is_empty() {
                    flags.push_str("none");
                }
                let _ = write!(s, "Flags [{flags}], seq {}, ", t.sequence_number());
                if t.ack() {
                    let _ = write!(s, "ack {}, ", t.acknowledgment_number());
                }
                let _ = write!(s, "win {}, length {}", t.window_size(), t.payload().len());
            }
        }
        Some(TransportSlice::Udp(u)) => {
            let _ = write!(
                s,
                "{ip_prefix} {src}.{} > {dst}.{}: ",
                u.source_port(),
                u.destination_port()
            );
            let _ = write!(s, "UDP, length {}", u.payload().len());
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let _ = write!(s, "{ip_prefix} {src} > {dst}: ICMP ");
            let b = i.bytes5to8();
            let (id, seq) = (
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            );
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
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let _ = write!(s, "{ip_prefix} {src} > {dst}: ICMP6, ");
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
            if name.is_empty() {
                let _ = write!(s, "type {}", i.type_u8());
            } else {
                s.push_str(name);
            }
            let _ = write!(s, ", length {}", i.slice().len());
        }
        Some(TransportSlice::Igmp(_)) => {
            let _ = write!(s, "{ip_prefix} {src} > {dst}: igmp");
        }
        None => {
            let proto = match &p.net {
                Some(LaxNetSlice::Ipv4(ip)) => ip.payload_ip_number().0,
                Some(LaxNetSlice::Ipv6(ip)) => ip.payload().ip_number.0,
                _ => 0,
            };
            let _ = write!(s, "{ip_prefix} {src} > {dst}: ip-proto-{proto}");
            if p.stop_err.is_some() {
                s.push_str(" [|truncated]");
            }
        }
    }
    s
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
