//! # xcap-bench
//!
//! The benchmarks of issue 7, run by `scripts/bench.sh`:
//!
//! 1. [`filters`]: each benchmark filter's cost inside the kernel, per access
//!    mode, against hand-written C (bench/c/filters.c) and the kernel's
//!    LD_ABS-style conversion ([`kstyle`]), measured with hand-assembled
//!    `bpf_loop` harnesses ([`harness`]).
//! 2. [`capture`]: CPU per packet of capturing on a veth pair, at trafgen's
//!    maximum rate and at a fixed rate (tcpdump, `xcap --tc`, `xcap --xdp`,
//!    bare pass programs), where every frame went, the programs' own cost
//!    (BPF statistics), each XDP and TC program's fixed cost on a rejected
//!    packet by `BPF_PROG_TEST_RUN` against bare and hand-written C
//!    programs (bench/c/programs.c), and startup time.
//!
//! Shared by both: [`stats`] (medians, spreads, paired differences),
//! [`clang`] (the hand-written C baselines of bench/c), [`sys`] and
//! [`packets`].
//!
//! Speed never fails a test; the smoke test only checks that the harnesses
//! load and agree with libpcap.

pub mod capture;
pub mod clang;
pub mod filters;
pub mod harness;
pub mod kstyle;
pub mod packets;
mod pin;
pub mod stats;
pub mod sys;
