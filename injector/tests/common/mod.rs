//! Shared by the injector's tests: hand-written filters that obey the
//! filter ABI, packets, BPF_PROG_TEST_RUN, and building the C fixture.
#![allow(dead_code)]

use std::{
    os::fd::AsFd,
    path::{Path, PathBuf},
    process::Command,
};

use cbpf2ebpf::ebpf::{helper, op, Insn, R0, R10, R2, R3, R4, R5, R6};

/// `return wirelen if start[0] == 0x45 else 0` (0 also when there is no
/// byte): r1 = ctx, r2 = start, r3 = end, r4 = wire length.
pub fn first_byte_is_0x45() -> Vec<Insn> {
    vec![
        Insn::mov64_reg(R5, R2),
        Insn::alu64_imm(op::ADD, R5, 1),
        Insn::jmp_reg(op::JGT, R5, R3, 4),
        Insn::ldx(op::B, R0, R2, 0),
        Insn::jmp_imm(op::JNE, R0, 0x45, 2),
        Insn::mov32_reg(R0, R4),
        Insn::exit(),
        Insn::mov32_imm(R0, 0),
        Insn::exit(),
    ]
}

/// The same test in skb mode, as the capture template's TC programs call
/// it: r2 and r3 are offsets into the skb, read with bpf_skb_load_bytes.
pub fn first_byte_is_0x45_skb() -> Vec<Insn> {
    vec![
        Insn::mov64_reg(R6, R4),
        Insn::mov64_reg(R5, R2),
        Insn::alu64_imm(op::ADD, R5, 1),
        Insn::jmp_reg(op::JGT, R5, R3, 9),
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(op::ADD, R3, -8),
        Insn::mov64_imm(R4, 1),
        Insn::call_helper(helper::SKB_LOAD_BYTES),
        Insn::jmp_imm(op::JNE, R0, 0, 4),
        Insn::ldx(op::B, R0, R10, -8),
        Insn::jmp_imm(op::JNE, R0, 0x45, 2),
        Insn::mov32_reg(R0, R6),
        Insn::exit(),
        Insn::mov32_imm(R0, 0),
        Insn::exit(),
    ]
}

/// The same filter after `n - 9` straight-line instructions (all verified:
/// the verifier rejects unreachable code), `n` instructions in all.
pub fn padded(n: usize) -> Vec<Insn> {
    padded_before(n, first_byte_is_0x45())
}

/// The skb-mode filter, padded to `n` instructions.
pub fn padded_skb(n: usize) -> Vec<Insn> {
    padded_before(n, first_byte_is_0x45_skb())
}

fn padded_before(n: usize, tail: Vec<Insn>) -> Vec<Insn> {
    assert!(n >= tail.len());
    let mut v: Vec<Insn> = (0..n - tail.len())
        .map(|i| Insn::mov64_imm(R5, i as i32))
        .collect();
    v.extend(tail);
    v
}

/// Returns a constant.
pub fn constant(k: i32) -> Vec<Insn> {
    vec![Insn::mov32_imm(R0, k), Insn::exit()]
}

/// A 64-byte Ethernet frame whose first byte is `first`, carrying an IPv4
/// header (0x45 at offset 14) or, with `ipv4 = false`, something else.
pub fn packet(first: u8, ipv4: bool) -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[0] = first;
    p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    p[12..14].copy_from_slice(if ipv4 { &[0x08, 0x00] } else { &[0x86, 0xdd] });
    p[14] = if ipv4 { 0x45 } else { 0x60 };
    p
}

/// Runs a loaded program once on `data` (BPF_PROG_TEST_RUN); its return value.
pub fn test_run(prog: &aya::programs::ProgramFd, data: &[u8]) -> u32 {
    let run = bpf_sys::TestRun {
        data_in: data,
        ..Default::default()
    };
    bpf_sys::test_run(prog.as_fd(), &run)
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"))
        .retval
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Compiles the C fixture with clang, as a C user would (`-g` gives BTF).
pub fn build_c_fixture(with_btf: bool) -> Vec<u8> {
    // Tests run in parallel threads: one file each.
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!(
        "xcap-injector-filters-{}-{n}.o",
        std::process::id()
    ));
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let mut cmd = Command::new("clang");
    cmd.args(["-O2", "-target", "bpf", "-c"]);
    if with_btf {
        cmd.arg("-g");
    }
    // Debian keeps <asm/types.h> under the multiarch directory.
    cmd.arg("-I")
        .arg(&include)
        .args(["-I", "/usr/include/x86_64-linux-gnu"]);
    cmd.arg(fixture("filters.c")).arg("-o").arg(&out);
    let status = cmd
        .status()
        .expect("clang is needed for the C fixture (scripts/setup.sh installs it)");
    assert!(status.success(), "clang failed on tests/fixtures/filters.c");
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    bytes
}

/// Sum of a per-CPU u64 counter.
pub fn counter(ebpf: &aya::Ebpf, map: &str, index: u32) -> u64 {
    let m =
        aya::maps::PerCpuArray::<_, u64>::try_from(ebpf.map(map).expect("counter map")).unwrap();
    m.get(&index, 0).unwrap().iter().sum()
}
