//! What a live capture hands over: packets, in batches.

use bytes::Bytes;

use crate::attribution;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

/// The hook a packet was seen at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookPoint {
    Xdp,
    Tc,
}

/// One captured packet.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Wall-clock time, ns since the epoch.
    pub ts_ns: u64,
    pub ifindex: u32,
    /// Index into [`Capture::interfaces`](crate::Capture::interfaces).
    pub iface: usize,
    pub hook: HookPoint,
    pub direction: Direction,
    /// Length on the wire (with an out-of-band VLAN tag put back: + 4).
    pub wirelen: u32,
    pub cpu: u32,
    /// XDP: RX queue; TC: `skb->queue_mapping`.
    pub queue: u32,
    /// TC: `skb->pkt_type`.
    pub pkt_type: u8,
    /// TC: the out-of-band VLAN tag (TPID, TCI), already put back into
    /// `data` after the MAC addresses, as libpcap does.
    pub vlan: Option<(u16, u16)>,
    /// The captured bytes.
    pub data: Bytes,
    /// Who sent or receives it ([`Config::who`](crate::Config::who)).
    pub owner: attribution::Owner,
    /// The same for the same packet at every hook (pcapng
    /// `epb_packetid`): see [`capture_abi::live::Hdr::packet_id`].
    pub packet_id: u64,
}

/// What one reader hands over at a time.
pub struct Batch {
    pub packets: Vec<Packet>,
}
