//! Tiny hand-written filters with the cbpf2ebpf ABI, to test the plumbing.
#![allow(dead_code)]

use cbpf2ebpf::ebpf::{helper, op, Insn, R0, R1, R10, R2, R3, R4, R5};
use cbpf2ebpf::Mode;

/// Returned by `byte_at` when the byte is past the captured data.
pub const NONE: u32 = 0xffff_ffff;
/// Returned by `byte_at` when a helper failed after the range check passed.
pub const HELPER_FAILED: u32 = 0xffff_fffe;

/// `return wirelen`
pub fn wirelen() -> Vec<Insn> {
    vec![Insn::mov32_reg(R0, R4), Insn::exit()]
}

/// `return end - start`
pub fn caplen() -> Vec<Insn> {
    vec![
        Insn::mov64_reg(R0, R3),
        Insn::alu64_reg(op::SUB, R0, R2),
        Insn::mov32_reg(R0, R0),
        Insn::exit(),
    ]
}

/// `return k`
pub fn constant(k: u32) -> Vec<Insn> {
    vec![Insn::mov32_imm(R0, k as i32), Insn::exit()]
}

/// The byte at offset `k` of the packet, read the way `mode` reads, or
/// [`NONE`] when `k` is not below `end - start`.
pub fn byte_at(mode: Mode, k: i16) -> Vec<Insn> {
    let k32 = k as i32;
    match mode {
        Mode::Direct => vec![
            Insn::mov64_reg(R5, R2),
            Insn::alu64_imm(op::ADD, R5, k32 + 1),
            Insn::jmp_reg(op::JGT, R5, R3, 2),
            Insn::ldx(op::B, R0, R2, k),
            Insn::exit(),
            Insn::mov32_imm(R0, NONE as i32),
            Insn::exit(),
        ],
        Mode::Skb => vec![
            // The helper checks the range itself (bpf_skb_load_bytes fails
            // past skb->len), but `end` must be honoured: check it first.
            Insn::mov64_reg(R5, R2),
            Insn::alu64_imm(op::ADD, R5, k32 + 1),
            Insn::jmp_reg(op::JGT, R5, R3, 8),
            Insn::alu64_imm(op::ADD, R2, k32),
            Insn::mov64_reg(R3, R10),
            Insn::alu64_imm(op::ADD, R3, -8),
            Insn::mov64_imm(R4, 1),
            Insn::call_helper(helper::SKB_LOAD_BYTES),
            Insn::jmp_imm(op::JNE, R0, 0, 4),
            Insn::ldx(op::B, R0, R10, -8),
            Insn::exit(),
            Insn::mov32_imm(R0, NONE as i32),
            Insn::exit(),
            Insn::mov32_imm(R0, HELPER_FAILED as i32),
            Insn::exit(),
        ],
        Mode::Probe => vec![
            Insn::mov64_reg(R5, R2),
            Insn::alu64_imm(op::ADD, R5, k32 + 1),
            Insn::jmp_reg(op::JGT, R5, R3, 9),
            Insn::mov64_reg(R1, R10),
            Insn::alu64_imm(op::ADD, R1, -8),
            Insn::mov64_reg(R3, R2),
            Insn::alu64_imm(op::ADD, R3, k32),
            Insn::mov64_imm(R2, 1),
            Insn::call_helper(helper::PROBE_READ_KERNEL),
            Insn::jmp_imm(op::JNE, R0, 0, 4),
            Insn::ldx(op::B, R0, R10, -8),
            Insn::exit(),
            Insn::mov32_imm(R0, NONE as i32),
            Insn::exit(),
            Insn::mov32_imm(R0, HELPER_FAILED as i32),
            Insn::exit(),
        ],
    }
}

/// Calls `bpf_skb_load_bytes` at offset `start + k` without checking `end`
/// first, and returns the helper's result (0 or a negative errno).
pub fn skb_load_result(k: i32) -> Vec<Insn> {
    vec![
        Insn::alu64_imm(op::ADD, R2, k),
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(op::ADD, R3, -8),
        Insn::mov64_imm(R4, 1),
        Insn::call_helper(helper::SKB_LOAD_BYTES),
        Insn::exit(),
    ]
}

pub const MODES: [Mode; 3] = [Mode::Direct, Mode::Skb, Mode::Probe];

/// A packet whose byte i is `i * 7 + 3` (mod 256).
pub fn packet(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}
