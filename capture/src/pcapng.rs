//! The pcapng blocks xcap writes, for live and tracing captures alike: a
//! Section Header Block, one Interface Description Block per interface
//! (as the reader numbers them, from 0) and Enhanced Packet Blocks, all
//! little-endian, with nanosecond timestamps. Block types and option codes
//! are named as in the pcapng specification (draft-ietf-opsawg-pcapng).

use std::io::{self, Write};

/// Block types.
pub const BLOCK_SECTION_HEADER: u32 = 0x0A0D_0D0A;
pub const BLOCK_INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
pub const BLOCK_ENHANCED_PACKET: u32 = 0x0000_0006;

/// The Section Header Block's byte-order magic.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Section Header Block: the format's version, and "length unknown".
const VERSION_MAJOR: u16 = 1;
const VERSION_MINOR: u16 = 0;
const SECTION_LENGTH_UNKNOWN: i64 = -1;

/// Options every block may carry.
pub const OPT_END_OF_OPT: u16 = 0;
pub const OPT_COMMENT: u16 = 1;
/// Section Header Block options.
pub const SHB_OS: u16 = 3;
pub const SHB_USERAPPL: u16 = 4;
/// Interface Description Block options.
pub const IF_NAME: u16 = 2;
pub const IF_DESCRIPTION: u16 = 3;
pub const IF_TSRESOL: u16 = 9;
pub const IF_FILTER: u16 = 11;
/// Enhanced Packet Block options.
pub const EPB_FLAGS: u16 = 2;
pub const EPB_PACKETID: u16 = 5;
pub const EPB_VERDICT: u16 = 7;

/// `if_tsresol`: timestamps in 10^-9 s.
const TSRESOL_NANOSECONDS: u8 = 9;
/// `if_filter`: the filter is a libpcap filter string.
const FILTER_LIBPCAP_STRING: u8 = 0;
/// `epb_flags` bits 0-1: the packet's direction.
pub const EPB_FLAGS_INBOUND: u32 = 1;
pub const EPB_FLAGS_OUTBOUND: u32 = 2;
/// `epb_verdict`'s type byte: a Linux eBPF XDP action follows (u64).
pub const VERDICT_LINUX_EBPF_XDP: u8 = 2;

/// A pcapng file as it is written: the section header, then interface
/// blocks as they are added (the reader numbers them from 0; here each
/// has a key `K`, what its packets are told apart by) and packets on
/// them. The one pcapng writer of live and tracing captures, alone or
/// together in one file; what each kind of packet carries is written by
/// its own module (`savefile`, `trace`).
pub struct Writer<W: Write, K> {
    out: W,
    interfaces: Vec<K>,
}

impl<W: Write, K: PartialEq> Writer<W, K> {
    /// Writes the section header.
    pub fn new(mut out: W) -> io::Result<Self> {
        section_header(&mut out)?;
        Ok(Writer {
            out,
            interfaces: Vec::new(),
        })
    }

    /// Writes an interface block; packets with `key` go on it.
    pub fn add_interface(&mut self, key: K, i: &Interface<'_>) -> io::Result<()> {
        interface_description(&mut self.out, i)?;
        self.interfaces.push(key);
        Ok(())
    }

    /// Whether an interface block has `key`.
    pub fn knows(&self, key: &K) -> bool {
        self.interfaces.contains(key)
    }

    /// Writes a packet with `opts` (code, value) on the interface block
    /// with `key` (the first block when none has it).
    pub fn packet(&mut self, key: &K, p: &Packet<'_>, opts: &[(u16, &[u8])]) -> io::Result<()> {
        let interface = self.interfaces.iter().position(|k| k == key).unwrap_or(0) as u32;
        enhanced_packet(&mut self.out, interface, p, opts)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes the Section Header Block, naming xcap and the OS.
fn section_header(out: &mut impl Write) -> io::Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    body.extend_from_slice(&VERSION_MINOR.to_le_bytes());
    body.extend_from_slice(&SECTION_LENGTH_UNKNOWN.to_le_bytes());
    let userappl = format!("xcap {}", env!("CARGO_PKG_VERSION"));
    options(
        &mut body,
        &[
            (SHB_USERAPPL, userappl.as_bytes()),
            (SHB_OS, os_name().as_bytes()),
        ],
    );
    block(out, BLOCK_SECTION_HEADER, &body)
}

/// One interface as the reader sees it.
pub struct Interface<'a> {
    /// The `LINKTYPE_*` of its packets.
    pub link_type: u16,
    pub snaplen: u32,
    pub name: &'a str,
    pub description: &'a str,
    /// The tcpdump expression the packets matched.
    pub filter: &'a str,
}

/// Writes an Interface Description Block with nanosecond timestamps.
fn interface_description(out: &mut impl Write, i: &Interface<'_>) -> io::Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&i.link_type.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes()); // reserved
    body.extend_from_slice(&i.snaplen.to_le_bytes());
    let mut filter = vec![FILTER_LIBPCAP_STRING];
    filter.extend_from_slice(i.filter.as_bytes());
    options(
        &mut body,
        &[
            (IF_NAME, i.name.as_bytes()),
            (IF_DESCRIPTION, i.description.as_bytes()),
            (IF_TSRESOL, &[TSRESOL_NANOSECONDS]),
            (IF_FILTER, &filter),
        ],
    );
    block(out, BLOCK_INTERFACE_DESCRIPTION, &body)
}

/// One packet.
pub struct Packet<'a> {
    /// Nanoseconds since the epoch.
    pub ts_ns: u64,
    /// The packet's length on the wire.
    pub wirelen: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Writes an Enhanced Packet Block on interface block number `interface`
/// with `opts` (code, value).
fn enhanced_packet(
    out: &mut impl Write,
    interface: u32,
    p: &Packet<'_>,
    opts: &[(u16, &[u8])],
) -> io::Result<()> {
    let mut body = Vec::with_capacity(p.data.len() + 128);
    body.extend_from_slice(&interface.to_le_bytes());
    body.extend_from_slice(&((p.ts_ns >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(p.ts_ns as u32).to_le_bytes());
    body.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
    body.extend_from_slice(&p.wirelen.to_le_bytes());
    body.extend_from_slice(p.data);
    pad4(&mut body);
    options(&mut body, opts);
    block(out, BLOCK_ENHANCED_PACKET, &body)
}

/// `epb_verdict` of an XDP program that returned `action`.
pub fn xdp_verdict(action: u64) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[0] = VERDICT_LINUX_EBPF_XDP;
    v[1..].copy_from_slice(&action.to_le_bytes());
    v
}

/// Appends each option, padded to 4 bytes, and the end of options.
fn options(body: &mut Vec<u8>, opts: &[(u16, &[u8])]) {
    for (code, value) in opts {
        body.extend_from_slice(&code.to_le_bytes());
        body.extend_from_slice(&(value.len() as u16).to_le_bytes());
        body.extend_from_slice(value);
        pad4(body);
    }
    body.extend_from_slice(&OPT_END_OF_OPT.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// A block: its type, its total length before and after the body.
fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&total.to_le_bytes());
    out.write_all(&b)
}

/// `shb_os`: the kernel's name and release (`Linux 6.18.0`).
fn os_name() -> String {
    // SAFETY: utsname is plain data, valid when zeroed.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid utsname buffer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "Linux".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&u.sysname), field(&u.release))
}
