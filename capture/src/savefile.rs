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
/// The ARPHRD_* types a LINUX_SLL2 header names.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
/// The packet type of a packet that left (PACKET_OUTGOING).
const PACKET_OUTGOING: u8 = 4;
/// The length of an Ethernet address, in a LINUX_SLL2 header.
const ETH_ALEN: u8 = 6;

/// The pcap file header: the magic number of nanosecond timestamps, the
/// format's version (2.4), and the time zone and accuracy fields, always 0.
const PCAP_MAGIC_NANOSECONDS: u32 = 0xa1b2_3c4d;
const PCAP_VERSION_MAJOR: u16 = 2;
const PCAP_VERSION_MINOR: u16 = 4;
const PCAP_FILE_HEADER_LEN: usize = 24;
/// A pcap record header: seconds, nanoseconds, captured and wire length.
const PCAP_RECORD_HEADER_LEN: usize = 16;

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
                out.write_all(&pcap_file_header(snaplen, linktype))?;
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
                out.write_all(&pcap_record_header(p.ts_ns, caplen, p.wirelen))?;
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

/// The pcap file header, for nanosecond timestamps.
fn pcap_file_header(snaplen: u32, linktype: u16) -> [u8; PCAP_FILE_HEADER_LEN] {
    let mut h = [0u8; PCAP_FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&PCAP_MAGIC_NANOSECONDS.to_le_bytes());
    h[4..6].copy_from_slice(&PCAP_VERSION_MAJOR.to_le_bytes());
    h[6..8].copy_from_slice(&PCAP_VERSION_MINOR.to_le_bytes());
    // thiszone and sigfigs (8..16) stay 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&u32::from(linktype).to_le_bytes());
    h
}

/// A pcap record header: the time in seconds and nanoseconds, the
/// captured and the wire length.
fn pcap_record_header(ts_ns: u64, caplen: u32, wirelen: u32) -> [u8; PCAP_RECORD_HEADER_LEN] {
    let mut h = [0u8; PCAP_RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&caplen.to_le_bytes());
    h[12..16].copy_from_slice(&wirelen.to_le_bytes());
    h
}

/// A LINUX_SLL2 record, as libpcap's `any` writes it.
fn write_cooked(out: &mut impl Write, interfaces: &[InterfaceDesc], p: &Packet) -> io::Result<()> {
    let loopback = interfaces
        .iter()
        .any(|i| i.ifindex == p.ifindex && i.loopback);
    let cooked = Cooked::of(p, loopback);
    let caplen = (cooked.payload.len() + SLL2_LEN) as u32;
    out.write_all(&pcap_record_header(p.ts_ns, caplen, cooked.wirelen))?;
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
        let arphrd = if loopback {
            ARPHRD_LOOPBACK
        } else {
            ARPHRD_ETHER
        };
        // PACKET_OUTGOING for what left; else the skb's type.
        let packet_type = match p.direction {
            Direction::Out => PACKET_OUTGOING,
            Direction::In => p.pkt_type,
        };
        let mut header = [0u8; SLL2_LEN];
        header[0..2].copy_from_slice(protocol);
        header[4..8].copy_from_slice(&p.ifindex.to_be_bytes());
        header[8..10].copy_from_slice(&arphrd.to_be_bytes());
        header[10] = packet_type;
        header[11] = ETH_ALEN;
        header[12..18].copy_from_slice(source);
        Cooked {
            header,
            payload,
            wirelen: p.wirelen + (SLL2_LEN as u32) - (data.len() - payload.len()) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pcap_file_header_is_libpcaps_nanosecond_header() {
        let expected = [
            0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0,
        ];
        assert_eq!(pcap_file_header(262_144, LINKTYPE_ETHERNET), expected);
    }

    #[test]
    fn a_pcap_record_header_splits_the_time_into_seconds_and_nanoseconds() {
        let h = pcap_record_header(1_500_000_007, 60, 1514);
        assert_eq!(&h[0..4], &1u32.to_le_bytes());
        assert_eq!(&h[4..8], &500_000_007u32.to_le_bytes());
        assert_eq!(&h[8..12], &60u32.to_le_bytes());
        assert_eq!(&h[12..16], &1514u32.to_le_bytes());
    }
}
