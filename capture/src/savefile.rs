//! Writing captured packets: pcap (nanosecond timestamps) and pcapng.
//!
//! Both formats are a handful of fixed blocks, written here directly so the
//! pcapng options xcap needs are exact: one Interface Description Block per
//! (interface, hook) with `if_name`, `if_description` (the hook),
//! `if_tsresol` = 9 (nanoseconds), `if_filter` (the expression) and the
//! snap length; Enhanced Packet Blocks with `epb_flags` (direction),
//! `epb_packetid` (the packet's id, see `Packet::packet_id`) and, for XDP,
//! `epb_verdict` (the XDP action xcap's program returned).

use std::io::{self, Write};

use crate::{pcapng, Direction, HookPoint, Packet};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_LINUX_SLL2: Linux cooked v2, what tcpdump `-i any` writes.
pub const LINKTYPE_LINUX_SLL2: u16 = 276;
/// Its header's length, in place of the 14 bytes of the Ethernet header.
pub const SLL2_LEN: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    /// pcap in LINUX_SLL2, each packet naming its interface (`-i any`).
    PcapCooked,
    Pcapng,
}

/// One pcapng interface: an interface seen through one hook.
#[derive(Clone, Debug)]
pub struct InterfaceDesc {
    pub name: String,
    pub ifindex: u32,
    pub hook: HookPoint,
    /// e.g. "xdp (native)", "tc".
    pub description: String,
    /// A loopback device (ARPHRD_LOOPBACK in LINUX_SLL2 records).
    pub loopback: bool,
}

/// A live record's interface block: (ifindex, hook).
pub type InterfaceKey = (u32, HookPoint);

impl InterfaceDesc {
    /// The key of its interface block: its packets' (ifindex, hook).
    pub fn key(&self) -> InterfaceKey {
        (self.ifindex, self.hook)
    }

    /// Its interface block.
    pub fn block<'a>(&'a self, snaplen: u32, filter: &'a str) -> pcapng::Interface<'a> {
        pcapng::Interface {
            link_type: LINKTYPE_ETHERNET,
            snaplen,
            name: &self.name,
            description: &self.description,
            filter,
        }
    }
}

impl Packet {
    /// The key of the interface block its record goes on.
    pub fn interface_key(&self) -> InterfaceKey {
        (self.ifindex, self.hook)
    }
}

pub struct Writer<W: Write> {
    out: Out<W>,
    interfaces: Vec<InterfaceDesc>,
    snaplen: u32,
    filter: String,
}

/// pcap's stream of records, or a pcapng file.
enum Out<W: Write> {
    Pcap { out: W, cooked: bool },
    Pcapng(pcapng::Writer<W, InterfaceKey>),
}

/// The action xcap's XDP program returns for every packet (`epb_verdict`).
const XDP_PASS: u64 = 2;

impl<W: Write> Writer<W> {
    /// Writes the file header (pcap) or the section header and every
    /// interface block (pcapng).
    pub fn new(
        mut out: W,
        format: Format,
        snaplen: u32,
        filter: &str,
        interfaces: Vec<InterfaceDesc>,
    ) -> io::Result<Self> {
        let out = match format {
            Format::Pcap | Format::PcapCooked => {
                let cooked = format == Format::PcapCooked;
                let linktype = match cooked {
                    true => LINKTYPE_LINUX_SLL2,
                    false => LINKTYPE_ETHERNET,
                };
                let mut h = Vec::with_capacity(24);
                h.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond pcap
                h.extend_from_slice(&2u16.to_le_bytes());
                h.extend_from_slice(&4u16.to_le_bytes());
                h.extend_from_slice(&0i32.to_le_bytes());
                h.extend_from_slice(&0u32.to_le_bytes());
                h.extend_from_slice(&snaplen.to_le_bytes());
                h.extend_from_slice(&(linktype as u32).to_le_bytes());
                out.write_all(&h)?;
                Out::Pcap { out, cooked }
            }
            Format::Pcapng => {
                let mut file = pcapng::Writer::new(out)?;
                for i in &interfaces {
                    file.add_interface(i.key(), &i.block(snaplen, filter))?;
                }
                Out::Pcapng(file)
            }
        };
        Ok(Writer {
            out,
            interfaces,
            snaplen,
            filter: filter.to_owned(),
        })
    }

    /// Whether packets of (`ifindex`, `hook`) have an interface.
    pub fn knows(&self, ifindex: u32, hook: HookPoint) -> bool {
        self.interfaces
            .iter()
            .any(|i| i.ifindex == ifindex && i.hook == hook)
    }

    /// An interface that appeared during the capture (`-i any`): in
    /// pcapng, its interface block, before its first packet.
    pub fn add_interface(&mut self, desc: InterfaceDesc) -> io::Result<()> {
        if let Out::Pcapng(file) = &mut self.out {
            file.add_interface(desc.key(), &desc.block(self.snaplen, &self.filter))?;
        }
        self.interfaces.push(desc);
        Ok(())
    }

    /// Writes one packet; pcapng gives it `comment` (pcap has no place
    /// for one).
    pub fn write(&mut self, p: &Packet, comment: Option<&str>) -> io::Result<()> {
        match &mut self.out {
            Out::Pcap { out, cooked: false } => {
                let caplen = p.data.len() as u32;
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&((p.ts_ns / 1_000_000_000) as u32).to_le_bytes());
                h[4..8].copy_from_slice(&((p.ts_ns % 1_000_000_000) as u32).to_le_bytes());
                h[8..12].copy_from_slice(&caplen.to_le_bytes());
                h[12..16].copy_from_slice(&p.wirelen.to_le_bytes());
                out.write_all(&h)?;
                out.write_all(&p.data)
            }
            Out::Pcap { out, cooked: true } => write_cooked(out, &self.interfaces, p),
            Out::Pcapng(file) => write_pcapng(file, &p.interface_key(), p, comment),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Out::Pcap { out, .. } => out.flush(),
            Out::Pcapng(file) => file.flush(),
        }
    }

    pub fn into_inner(self) -> W {
        match self.out {
            Out::Pcap { out, .. } => out,
            Out::Pcapng(file) => file.into_inner(),
        }
    }
}

/// A live packet's Enhanced Packet Block on the interface block `key` of
/// `file`: `comment`, `epb_flags` (direction), `epb_packetid` and, at
/// XDP, `epb_verdict`.
pub fn write_pcapng<W: Write, K: PartialEq>(
    file: &mut pcapng::Writer<W, K>,
    key: &K,
    p: &Packet,
    comment: Option<&str>,
) -> io::Result<()> {
    let flags = match p.direction {
        Direction::In => pcapng::EPB_FLAGS_INBOUND,
        Direction::Out => pcapng::EPB_FLAGS_OUTBOUND,
    }
    .to_le_bytes();
    let verdict = pcapng::xdp_verdict(XDP_PASS);
    let packet_id = p.packet_id.to_le_bytes();
    let mut opts: Vec<(u16, &[u8])> = Vec::with_capacity(4);
    if let Some(text) = comment {
        opts.push((pcapng::OPT_COMMENT, text.as_bytes()));
    }
    opts.push((pcapng::EPB_FLAGS, &flags));
    opts.push((pcapng::EPB_PACKETID, &packet_id));
    if p.hook == HookPoint::Xdp {
        opts.push((pcapng::EPB_VERDICT, &verdict));
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

/// A LINUX_SLL2 record, as libpcap's `any` writes it.
fn write_cooked(out: &mut impl Write, interfaces: &[InterfaceDesc], p: &Packet) -> io::Result<()> {
    let loopback = interfaces
        .iter()
        .any(|i| i.ifindex == p.ifindex && i.loopback);
    let cooked = Cooked::of(p, loopback);
    let caplen = (cooked.payload.len() + SLL2_LEN) as u32;
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&((p.ts_ns / 1_000_000_000) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&((p.ts_ns % 1_000_000_000) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&caplen.to_le_bytes());
    h[12..16].copy_from_slice(&cooked.wirelen.to_le_bytes());
    out.write_all(&h)?;
    out.write_all(&cooked.header)?;
    out.write_all(cooked.payload)
}

/// A packet in Linux cooked v2 (LINUX_SLL2), as libpcap's `any` device
/// gives it: the Ethernet header becomes the cooked header (protocol,
/// ifindex, ARPHRD type, packet type, source address); a VLAN tag stays
/// after it. Files (`-i any` in pcap) and text lines (`-i any`) both show
/// packets this way.
pub struct Cooked<'p> {
    pub header: [u8; SLL2_LEN],
    /// What follows the Ethernet header.
    pub payload: &'p [u8],
    /// The packet's length on the wire, counted with the cooked header.
    pub wirelen: u32,
}

impl<'p> Cooked<'p> {
    /// `p` as cooked; `loopback`: its interface is a loopback device.
    pub fn of(p: &'p Packet, loopback: bool) -> Cooked<'p> {
        let data = &p.data[..];
        let (protocol, source, payload) = match data.len() {
            14.. => (&data[12..14], &data[6..12], &data[14..]),
            _ => (&[0u8, 0][..], &[0u8; 6][..], data),
        };
        let arphrd: u16 = if loopback { 772 } else { 1 };
        // PACKET_OUTGOING for what left; else the skb's type.
        let packet_type = match p.direction {
            Direction::Out => 4,
            Direction::In => p.pkt_type,
        };
        let mut header = [0u8; SLL2_LEN];
        header[0..2].copy_from_slice(protocol);
        header[4..8].copy_from_slice(&p.ifindex.to_be_bytes());
        header[8..10].copy_from_slice(&arphrd.to_be_bytes());
        header[10] = packet_type;
        header[11] = 6;
        header[12..18].copy_from_slice(source);
        Cooked {
            header,
            payload,
            wirelen: p.wirelen + (SLL2_LEN as u32) - (data.len() - payload.len()) as u32,
        }
    }
}
