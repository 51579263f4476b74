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
//! filter result != 0) and failed perf outputs ([`COUNTER_OUTPUT_ERRORS`]).
//! A match sends a perf sample to [`EVENTS_MAP`]: a 40-byte header (see
//! `capture-bpf/src/main.rs`, `Hdr`) and the packet's first
//! `min(snaplen, filter result, length)` bytes. [`GLOBAL_SNAPLEN`],
//! [`GLOBAL_TC_PULL`], [`GLOBAL_FILTER_READS_LEN`] and [`GLOBAL_COUNT_SEEN`] are `.rodata` globals
//! for `EbpfLoader::set_global`.

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
pub const COUNTERS_LEN: u32 = 3;
pub const EVENTS_MAP: &str = "XCAP_EVENTS";
pub const GLOBAL_SNAPLEN: &str = "XCAP_SNAPLEN";
pub const GLOBAL_TC_PULL: &str = "XCAP_TC_PULL";
/// u32, XDP: 0 when the filter never reads the wire length (saves a helper
/// call per packet); 1, the default, otherwise.
pub const GLOBAL_FILTER_READS_LEN: &str = "XCAP_FILTER_READS_LEN";
/// u32, XDP and TC: 1 (the default) to count packets seen, 0 to save the
/// counter's cost on every packet.
pub const GLOBAL_COUNT_SEEN: &str = "XCAP_COUNT_SEEN";
