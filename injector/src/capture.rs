//! xcap's capture programs (`capture-bpf/`), built for the BPF target by
//! `build.rs` and embedded here, ready for [`crate::splice`].
//!
//! | program | section | stub | filter hook |
//! |---|---|---|---|
//! | [`PROG_XDP`] | `xdp` | [`STUB_XDP`] | `cbpf2ebpf::Hook::Xdp` |
//! | [`PROG_TC`] | `classifier` | [`STUB_TC`] | `cbpf2ebpf::Hook::TcIngress` |
//! | [`PROG_TC_EGRESS`] | `classifier` | [`STUB_TC_EGRESS`] | `cbpf2ebpf::Hook::TcEgress` |
//!
//! All let every packet pass (XDP_PASS; TC_ACT_UNSPEC, i.e. TCX_NEXT) and
//! count, per CPU, in the array map [`COUNTERS_MAP`]: packets seen
//! ([`COUNTER_SEEN`], unless [`GLOBAL_COUNT_SEEN`] is 0), packets the filter matched ([`COUNTER_MATCHED`],
//! filter result != 0) and records that could not be written
//! ([`COUNTER_OUTPUT_ERRORS`]). A match writes a record to the BPF ring
//! buffer of its CPU: [`RINGS_MAP`] is an array of maps, indexed by CPU, of
//! ring buffers that the loader creates and puts there. A record is an
//! 88-byte header (see `capture-bpf/src/main.rs`, `Hdr`) and the packet's
//! first `min(snaplen, filter result, length)` bytes, in a record rounded
//! up to a size class. The tracing programs send perf samples to
//! [`EVENTS_MAP`] instead. [`GLOBAL_SNAPLEN`], [`GLOBAL_TC_PULL`],
//! [`GLOBAL_FILTER_READS_LEN`], [`GLOBAL_COUNT_SEEN`],
//! [`GLOBAL_WAKEUP_EVENTS`] and [`GLOBAL_WAKEUP_BYTES`] are `.rodata`
//! globals for `EbpfLoader::set_global`.

/// The compiled object (ELF, bpfel, with `.BTF` and `.BTF.ext`).
pub static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/capture.o"));

pub const PROG_XDP: &str = "xcap_xdp";
pub const PROG_TC: &str = "xcap_tc";
pub const PROG_TC_EGRESS: &str = "xcap_tc_egress";
pub const STUB_XDP: &str = "xcap_filter_xdp";
pub const STUB_TC: &str = "xcap_filter_tc";
pub const STUB_TC_EGRESS: &str = "xcap_filter_tc_egress";
pub const COUNTERS_MAP: &str = "XCAP_COUNTERS";
pub const COUNTER_SEEN: u32 = 0;
pub const COUNTER_MATCHED: u32 = 1;
pub const COUNTER_OUTPUT_ERRORS: u32 = 2;
/// Records ([`GLOBAL_WAKEUP_EVENTS`] mode) or bytes
/// ([`GLOBAL_WAKEUP_BYTES`]) written since the last forced wakeup.
pub const COUNTER_UNWOKEN: u32 = 3;
pub const COUNTERS_LEN: u32 = 4;
/// The tracing programs' perf event array.
pub const EVENTS_MAP: &str = "XCAP_EVENTS";
/// The XDP and TC programs' array of per-CPU ring buffers.
pub const RINGS_MAP: &str = "XCAP_RINGS";
/// An array map (`BPF_F_MMAPABLE`) of a 64-byte slot per CPU: a reader sets
/// the first u64 of its CPU's slot while it sleeps without a timeout, and
/// the program that writes the next record to that CPU's ring clears it and
/// wakes the reader.
pub const ASLEEP_MAP: &str = "XCAP_ASLEEP";
pub const GLOBAL_SNAPLEN: &str = "XCAP_SNAPLEN";
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
/// to its ring; with
/// both 0 the kernel wakes it whenever it has caught up.
pub const GLOBAL_WAKEUP_BYTES: &str = "XCAP_WAKEUP_BYTES";

/// Attribution (`capture-bpf/src/owner.rs`): the socket storage map of
/// each socket's owner, which the loader makes (with BTF, cloned on
/// accept), and the programs that fill it, each with the cgroup hook it
/// is linked to (`BPF_CGROUP_*`).
pub const OWNERS_MAP: &str = "XCAP_OWNERS";
/// The bytes of an owner record (`Owner`: pid, tid, cgroup id, netns
/// cookie, comm), in the socket storage and in the record header.
pub const OWNER_LEN: u32 = 40;
pub const OWNER_PROGRAMS: [&str; 9] = [
    "xcap_owner_create",
    "xcap_owner_bind4",
    "xcap_owner_bind6",
    "xcap_owner_connect4",
    "xcap_owner_connect6",
    "xcap_owner_sendmsg4",
    "xcap_owner_sendmsg6",
    "xcap_owner_recvmsg4",
    "xcap_owner_recvmsg6",
];
/// u32: 1 to attribute packets at TC (0: the code is dead, plain capture
/// costs nothing more).
pub const GLOBAL_ATTRIBUTION: &str = "XCAP_ATTRIBUTION";
/// u32: which process filters apply (`SELECT_*` bits, ANDed).
pub const GLOBAL_SELECT: &str = "XCAP_SELECT";
pub const SELECT_PID: u32 = 1;
pub const SELECT_COMM: u32 = 2;
pub const SELECT_CGROUP: u32 = 4;
/// Hash maps of what the process filters select: pids (u32 key), command
/// names (16 bytes, NUL-padded), cgroup ids (u64); values are one byte.
pub const SEL_PIDS_MAP: &str = "XCAP_SEL_PIDS";
pub const SEL_COMMS_MAP: &str = "XCAP_SEL_COMMS";
pub const SEL_CGROUPS_MAP: &str = "XCAP_SEL_CGROUPS";

/// The record header of the XDP and TC programs (`Hdr`), in bytes: the
/// packet's 40 bytes, then the owner ([`OWNER_LEN`] bytes at
/// [`HDR_OWNER_AT`]) and its state ([`HDR_OWNER_STATE_AT`]: `OWNER_*`).
pub const HDR_LEN: usize = 88;
pub const HDR_OWNER_AT: usize = 40;
pub const HDR_OWNER_STATE_AT: usize = 80;
/// Attribution was off.
pub const OWNER_OFF: u8 = 0;
pub const OWNER_FOUND: u8 = 1;
/// No local socket: forwarded, or addressed to no socket here.
pub const OWNER_NO_SOCKET: u8 = 2;
/// A socket with no owner recorded.
pub const OWNER_UNKNOWN: u8 = 3;
