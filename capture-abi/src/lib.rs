//! The contract between xcap's capture programs (`capture-bpf/`, built for
//! the BPF target) and the user space that loads them and reads their
//! records (the `capture` crate). Both sides import it, so a header field,
//! a constant or a name is written once.
//!
//! - [`live`]: the XDP and TC programs, their filter stubs and the record
//!   each writes to its CPU's ring buffer ([`live::Hdr`]).
//! - [`owner`]: who sent each packet: the owner programs, the owner
//!   record and the process filters' settings and maps.
//! - [`trace`]: the tracing programs (`tp_btf`, `fentry`), their stubs, the
//!   kernel field offsets they are given and the perf sample header
//!   ([`trace::TraceHdr`]).
//! - Here: what both share: the counters, the maps and the globals every
//!   program reads, and [`read`], which turns the front of a record into
//!   its header.
//!
//! Headers are `#[repr(C)]`, in host byte order unless a field says
//! otherwise, and made of integers only ([`Plain`]), so any bytes are a
//! valid header.

#![no_std]

pub mod live;
pub mod owner;
pub mod trace;

/// Per-CPU counters ([`COUNTER_SEEN`] ..): an array of `u64`,
/// [`COUNTERS_LEN`] entries per CPU.
pub const COUNTERS_MAP: &str = "XCAP_COUNTERS";
/// Packets the program saw (unless [`GLOBAL_COUNT_SEEN`] is 0).
pub const COUNTER_SEEN: u32 = 0;
/// Packets the filter matched (filter result != 0).
pub const COUNTER_MATCHED: u32 = 1;
/// Records that could not be written (a full ring or perf buffer, a failed
/// copy): the packet is lost.
pub const COUNTER_OUTPUT_ERRORS: u32 = 2;
/// Records ([`GLOBAL_WAKEUP_EVENTS`] mode) or bytes
/// ([`GLOBAL_WAKEUP_BYTES`]) written since the last forced wakeup.
pub const COUNTER_UNWOKEN: u32 = 3;
pub const COUNTERS_LEN: u32 = 4;

/// The tracing programs' perf event array (one perf buffer per CPU).
pub const EVENTS_MAP: &str = "XCAP_EVENTS";
/// The XDP and TC programs' array of per-CPU ring buffers, indexed by CPU;
/// the loader creates the rings and puts them there.
pub const RINGS_MAP: &str = "XCAP_RINGS";
/// An array map (`BPF_F_MMAPABLE`) of a 64-byte slot per CPU: a reader sets
/// the first u64 of its CPU's slot while it sleeps without a timeout, and
/// the program that writes the next record to that CPU's ring clears it and
/// wakes the reader.
pub const ASLEEP_MAP: &str = "XCAP_ASLEEP";

/// `.rodata` globals the loader sets (frozen: the verifier sees constants).
///
/// u32: most bytes of a packet to capture.
pub const GLOBAL_SNAPLEN: &str = "XCAP_SNAPLEN";
/// u32, TC: when the linear part of an skb holds fewer than
/// `min(XCAP_TC_PULL, skb->len)` bytes, `bpf_skb_pull_data` makes that many
/// linear before the filter runs; 0 never pulls.
pub const GLOBAL_TC_PULL: &str = "XCAP_TC_PULL";
/// u32, XDP: 0 when the filter never reads the wire length (saves a helper
/// call per packet); 1, the default, otherwise.
pub const GLOBAL_FILTER_READS_LEN: &str = "XCAP_FILTER_READS_LEN";
/// u32, XDP and TC: 1 (the default) to count packets seen, 0 to save the
/// counter's cost on every packet.
pub const GLOBAL_COUNT_SEEN: &str = "XCAP_COUNT_SEEN";
/// u32: > 1 wakes a ring's reader after that many records.
pub const GLOBAL_WAKEUP_EVENTS: &str = "XCAP_WAKEUP_EVENTS";
/// u32: otherwise, > 0 wakes it each time this many bytes have been written
/// to its ring; with both 0 the kernel wakes it whenever it has caught up.
pub const GLOBAL_WAKEUP_BYTES: &str = "XCAP_WAKEUP_BYTES";

/// A record header: `#[repr(C)]`, integers and arrays of integers only.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid value
/// (no references, `bool`s, enums or padding a reader may not see).
pub unsafe trait Plain: Copy {}

/// The header at the front of `record`, or `None` when the record is
/// shorter than a header. Records need not be aligned.
pub fn read<H: Plain>(record: &[u8]) -> Option<H> {
    if record.len() < core::mem::size_of::<H>() {
        return None;
    }
    // SAFETY: `record` holds at least `size_of::<H>()` bytes, read without
    // an alignment requirement, and `H: Plain` accepts any bytes.
    Some(unsafe { record.as_ptr().cast::<H>().read_unaligned() })
}
