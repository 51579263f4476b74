//! The pcapng file of a tracing capture.

use std::io::{self, Write};

use super::{AttachedHook, LinkType, TracePacket};
use crate::pcapng;

/// A pcapng file for tracing captures: one interface block per (hook, link
/// type), written up front (`--xdp-hook`'s hooks capture Ethernet only);
/// each packet carries a comment with its metadata and `epb_packetid` (the
/// skb address; `--xdp-hook`: the id its entry and exit copies share), and
/// exit copies of `--xdp-hook` their verdict (`epb_verdict`).
pub struct TraceWriter<W: Write> {
    out: W,
    /// The interface blocks, in order.
    interfaces: Vec<(usize, LinkType)>,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(mut out: W, snaplen: u32, filter: &str, hooks: &[AttachedHook]) -> io::Result<Self> {
        pcapng::section_header(&mut out)?;
        let mut interfaces = Vec::new();
        for (i, h) in hooks.iter().enumerate() {
            let links: &[LinkType] = if h.on_xdp_program() {
                &[LinkType::Ethernet]
            } else {
                &[LinkType::Ethernet, LinkType::Raw]
            };
            for &link in links {
                let what = match link {
                    LinkType::Ethernet => "from the MAC header",
                    LinkType::Raw => "from the network header",
                };
                pcapng::interface_description(
                    &mut out,
                    &pcapng::Interface {
                        link_type: link.pcap_linktype(),
                        snaplen,
                        name: &format!("{}:{}", h.name, link.name()),
                        description: &format!("xcap {}, {what}", h.description),
                        filter,
                    },
                )?;
                interfaces.push((i, link));
            }
        }
        Ok(TraceWriter { out, interfaces })
    }

    /// Writes one packet with `comment` (the metadata, as text).
    pub fn write(&mut self, p: &TracePacket, comment: &str) -> io::Result<()> {
        let id = self
            .interfaces
            .iter()
            .position(|&(h, l)| h == p.hook && l == p.link)
            .unwrap_or(0) as u32;
        let packet_id = p.skb.to_le_bytes();
        let verdict = p.verdict.map(|v| pcapng::xdp_verdict(u64::from(v)));
        let mut opts: Vec<(u16, &[u8])> = vec![
            (pcapng::OPT_COMMENT, comment.as_bytes()),
            (pcapng::EPB_PACKETID, &packet_id),
        ];
        if let Some(v) = &verdict {
            opts.push((pcapng::EPB_VERDICT, v));
        }
        pcapng::enhanced_packet(
            &mut self.out,
            &pcapng::Packet {
                interface: id,
                ts_ns: p.ts_ns,
                wirelen: p.wirelen,
                data: &p.data,
            },
            &opts,
        )
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
