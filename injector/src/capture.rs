//! xcap's capture programs (`capture-bpf/`), built for the BPF target by
//! `build.rs` and embedded here, ready for [`crate::splice`].
//!
//! | program | section | stub | filter hook |
//! |---|---|---|---|
//! | [`PROG_XDP`] | `xdp` | [`STUB_XDP`] | `cbpf2ebpf::Hook::Xdp` |
//! | [`PROG_TC`] | `classifier` | [`STUB_TC`] | `cbpf2ebpf::Hook::TcIngress` / `TcEgress` |
//!
//! Both let every packet pass and count, per CPU, in the array map
//! [`COUNTERS_MAP`]: packets seen ([`COUNTER_SEEN`]) and packets the filter
//! matched ([`COUNTER_MATCHED`], filter result != 0).

/// The compiled object (ELF, bpfel, with `.BTF` and `.BTF.ext`).
pub static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/capture.o"));

pub const PROG_XDP: &str = "xcap_xdp";
pub const PROG_TC: &str = "xcap_tc";
pub const STUB_XDP: &str = "xcap_filter_xdp";
pub const STUB_TC: &str = "xcap_filter_tc";
pub const COUNTERS_MAP: &str = "XCAP_COUNTERS";
pub const COUNTER_SEEN: u32 = 0;
pub const COUNTER_MATCHED: u32 = 1;
