//! The pcapng records of a tracing capture: its interface blocks and its
//! packets, written by the one pcapng writer ([`crate::pcapng::Writer`])
//! into a file of their own ([`TraceWriter`]) or one shared with a live
//! capture.

use std::io::{self, Write};

use super::{AttachedHook, LinkType, TracePacket};
use crate::pcapng;

/// A tracing record's interface block: (index into the hooks, link type).
pub type InterfaceKey = (usize, LinkType);

/// The interface blocks of tracing hooks, in order: one per (hook, link
/// type) (`--xdp-hook`'s hooks capture Ethernet only), with its name and
/// description.
fn interface_blocks(hooks: &[AttachedHook]) -> Vec<(InterfaceKey, String, String)> {
    let mut blocks = Vec::new();
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
            blocks.push((
                (i, link),
                format!("{}:{}", h.name, link.name()),
                format!("xcap {}, {what}", h.description),
            ));
        }
    }
    blocks
}

/// Adds the tracing hooks' interface blocks to `file`, each keyed by
/// `key` of its [`InterfaceKey`].
pub fn add_interfaces<W: Write, K: PartialEq>(
    file: &mut pcapng::Writer<W, K>,
    hooks: &[AttachedHook],
    snaplen: u32,
    filter: &str,
    key: impl Fn(InterfaceKey) -> K,
) -> io::Result<()> {
    for ((i, link), name, description) in interface_blocks(hooks) {
        file.add_interface(
            key((i, link)),
            &pcapng::Interface {
                link_type: link.pcap_linktype(),
                snaplen,
                name: &name,
                description: &description,
                filter,
            },
        )?;
    }
    Ok(())
}

/// A traced packet's Enhanced Packet Block on the interface block `key`
/// of `file`: `comment` (its metadata, as text), `epb_packetid` (the skb
/// address; `--xdp-hook`: the id its entry and exit copies share) and,
/// at `--xdp-hook`'s exit, `epb_verdict`.
pub fn write_pcapng<W: Write, K: PartialEq>(
    file: &mut pcapng::Writer<W, K>,
    key: &K,
    p: &TracePacket,
    comment: &str,
) -> io::Result<()> {
    let packet_id = p.skb.to_le_bytes();
    let verdict = p.verdict.map(|v| pcapng::xdp_verdict(u64::from(v)));
    let mut opts: Vec<(u16, &[u8])> = vec![
        (pcapng::OPT_COMMENT, comment.as_bytes()),
        (pcapng::EPB_PACKETID, &packet_id),
    ];
    if let Some(v) = &verdict {
        opts.push((pcapng::EPB_VERDICT, v));
    }
    file.packet(
        key,
        &pcapng::Packet {
            ts_ns: p.ts_ns,
            wirelen: p.wirelen,
            data: &p.data,
        },
        &opts,
    )
}

/// A pcapng file for tracing captures: the hooks' interface blocks
/// written up front (one per hook and link type), and their packets
/// ([`write_pcapng`]).
pub struct TraceWriter<W: Write> {
    file: pcapng::Writer<W, InterfaceKey>,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(out: W, snaplen: u32, filter: &str, hooks: &[AttachedHook]) -> io::Result<Self> {
        let mut file = pcapng::Writer::new(out)?;
        add_interfaces(&mut file, hooks, snaplen, filter, |k| k)?;
        Ok(TraceWriter { file })
    }

    /// Writes one packet with `comment` (the metadata, as text).
    pub fn write(&mut self, p: &TracePacket, comment: &str) -> io::Result<()> {
        write_pcapng(&mut self.file, &p.interface_key(), p, comment)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl TracePacket {
    /// The key of the interface block its record goes on.
    pub fn interface_key(&self) -> InterfaceKey {
        (self.hook, self.link)
    }
}
