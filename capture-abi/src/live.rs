//! The XDP and TC programs and the record they write to their CPU's ring
//! buffer ([`super::RINGS_MAP`]): a [`Hdr`], then `caplen` packet bytes,
//! in a record rounded up to a size class.
//!
//! | program | section | stub | filter hook |
//! |---|---|---|---|
//! | [`PROG_XDP`] | `xdp.frags` | [`STUB_XDP`] | `cbpf2ebpf::Hook::Xdp` |
//! | [`PROG_TC`] | `classifier` | [`STUB_TC`] | `cbpf2ebpf::Hook::TcIngress` |
//! | [`PROG_TC_EGRESS`] | `classifier` | [`STUB_TC_EGRESS`] | `cbpf2ebpf::Hook::TcEgress` |

pub const PROG_XDP: &str = "xcap_xdp";
pub const PROG_TC: &str = "xcap_tc";
pub const PROG_TC_EGRESS: &str = "xcap_tc_egress";
pub const STUB_XDP: &str = "xcap_filter_xdp";
pub const STUB_TC: &str = "xcap_filter_tc";
pub const STUB_TC_EGRESS: &str = "xcap_filter_tc_egress";

/// [`Hdr::hook`].
pub const HOOK_XDP: u8 = 1;
pub const HOOK_TC: u8 = 2;
/// [`Hdr::direction`].
pub const DIR_IN: u8 = 1;
pub const DIR_OUT: u8 = 2;

/// The metadata header in front of the packet bytes of each record (host
/// byte order unless noted).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Hdr {
    /// `bpf_ktime_get_tai_ns()` (CLOCK_TAI): user space adds the
    /// CLOCK_REALTIME - CLOCK_TAI offset.
    pub ts_ns: u64,
    /// XDP: `ingress_ifindex`; TC: `skb->ifindex`.
    pub ifindex: u32,
    /// The packet's length (XDP: all buffers; TC: `skb->len`).
    pub wirelen: u32,
    /// Packet bytes after this header.
    pub caplen: u32,
    pub cpu: u32,
    /// XDP: `rx_queue_index`; TC: `skb->queue_mapping`.
    pub queue: u32,
    /// The filter's result (its snap length).
    pub filter_ret: u32,
    /// [`HOOK_XDP`] or [`HOOK_TC`].
    pub hook: u8,
    /// [`DIR_IN`] or [`DIR_OUT`].
    pub direction: u8,
    /// TC: `skb->vlan_present` (the tag is out of the packet), `skb->pkt_type`.
    pub vlan_present: u8,
    pub pkt_type: u8,
    /// TC: `skb->vlan_tci` (host order) and `skb->vlan_proto` (network order).
    pub vlan_tci: u16,
    pub vlan_proto: u16,
    /// TC with attribution: who sent or receives the packet, when
    /// `owner_state` is [`super::owner::OWNER_FOUND`].
    pub owner: super::owner::Owner,
    /// `super::owner::OWNER_*`.
    pub owner_state: u8,
    pub _pad: [u8; 7],
    /// The packet's id, the same wherever xcap sees the packet (pcapng
    /// `epb_packetid`). TC: the `struct sk_buff` address (the program's
    /// context is the kernel's skb, and the tracing hooks record the same
    /// address in [`super::trace::TraceHdr::skb`]). XDP, before any skb
    /// exists: [`xdp_packet_id`] of the CPU and its count of matched
    /// packets, never a kernel address.
    pub packet_id: u64,
}

/// An XDP record's packet id: the CPU in the top 16 bits (its top bit
/// clear, where a kernel address has it set), below them the CPU's
/// [`super::COUNTER_MATCHED`] count, this packet included.
pub const fn xdp_packet_id(cpu: u32, matched: u64) -> u64 {
    ((cpu as u64) << 48) | (matched & 0xffff_ffff_ffff)
}

/// Bytes of [`Hdr`]: the packet starts this far into a record.
pub const HDR_BYTES: usize = core::mem::size_of::<Hdr>();
// A new field changes this size: keep the header free of padding.
const _: () = assert!(HDR_BYTES == 96);

// SAFETY: integers only, and no padding (96 bytes, checked above).
unsafe impl super::Plain for Hdr {}
