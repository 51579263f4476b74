//! The wrappers: for each mode, the program type and the hand-assembled
//! program that sets `r1`..`r4` as the filter ABI says, calls the filter
//! and reports `r0` (see the table in the module above).

use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R10, R2, R3, R4, R6, R7};
use cbpf2ebpf::Mode;

use super::ProgType;

/// Bytes before the packet in the test input (see the module docs).
pub const HEADER_LEN: usize = 16;

/// The largest packet [`KernelFilter::run`](super::KernelFilter::run) accepts in `Direct` mode: an XDP
/// test run takes at most a page minus `XDP_PACKET_HEADROOM` (256) minus the
/// aligned `skb_shared_info` (320) = 3520 bytes of linear data with 4 KiB
/// pages (more would go to fragments, which packet pointers cannot see),
/// less our header.
pub fn max_packet_len(mode: Mode) -> usize {
    let page = page_size();
    match mode {
        Mode::Direct => page - 256 - 320 - HEADER_LEN,
        // skb test runs: a page minus NET_SKB_PAD (64) and the aligned
        // skb_shared_info (320); NET_IP_ALIGN is 0 on x86.
        Mode::Skb => page - 64 - 320 - HEADER_LEN,
        // SYSCALL programs take up to U16_MAX bytes of context.
        Mode::Probe => 65535 - HEADER_LEN,
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The program type [`KernelFilter`](super::KernelFilter) uses for `mode`.
pub fn prog_type(mode: Mode) -> ProgType {
    match mode {
        Mode::Direct => ProgType::XDP,
        Mode::Skb => ProgType::SCHED_CLS,
        Mode::Probe => ProgType::SYSCALL,
    }
}

const XDP_ABORTED: i32 = 0;
pub(super) const XDP_PASS: i32 = 2;
const W: u8 = op::W;
const DW: u8 = op::DW;

/// Fixes up the wrapper's single bpf2bpf call so it reaches the filter,
/// which starts right after the wrapper.
fn link(mut wrapper: Vec<Insn>) -> Vec<Insn> {
    let n = wrapper.len() as i32;
    let call = wrapper
        .iter()
        .position(|i| i.code == op::JMP | op::CALL && i.src == op::PSEUDO_CALL)
        .expect("wrapper has a call");
    wrapper[call].imm = n - (call as i32 + 1);
    wrapper
}

fn pseudo_call() -> Insn {
    Insn::new(op::JMP | op::CALL, 0, op::PSEUDO_CALL, 0, 0)
}

/// The wrapper for `mode`, without the filter. Its call is already linked to
/// the instruction after its last one.
pub fn wrapper(mode: Mode) -> Vec<Insn> {
    let h = HEADER_LEN as i32;
    let w = match mode {
        // XDP: r1 = struct xdp_md *.
        Mode::Direct => vec![
            Insn::mov64_reg(R6, R1),
            Insn::ldx(W, R2, R6, 0), // data
            Insn::ldx(W, R3, R6, 4), // data_end
            Insn::mov64_reg(R0, R2),
            Insn::alu64_imm(op::ADD, R0, h),
            Insn::jmp_reg(op::JGT, R0, R3, 13), // -> abort
            Insn::ldx(W, R4, R2, 0),            // wire length
            Insn::alu64_imm(op::ADD, R2, h),    // start
            Insn::mov64_reg(R1, R6),
            pseudo_call(),
            Insn::mov64_reg(R7, R0),
            Insn::ldx(W, R2, R6, 0),
            Insn::ldx(W, R3, R6, 4),
            Insn::mov64_reg(R1, R2),
            Insn::alu64_imm(op::ADD, R1, h),
            Insn::jmp_reg(op::JGT, R1, R3, 3), // -> abort
            Insn::stx(W, R2, R7, 4),
            Insn::mov64_imm(R0, XDP_PASS),
            Insn::exit(),
            Insn::mov64_imm(R0, XDP_ABORTED), // abort:
            Insn::exit(),
        ],
        // SCHED_CLS: r1 = struct __sk_buff *; len at 0, data at 76,
        // data_end at 80.
        Mode::Skb => vec![
            Insn::ldx(W, R2, R1, 76),
            Insn::ldx(W, R3, R1, 80),
            Insn::mov64_reg(R0, R2),
            Insn::alu64_imm(op::ADD, R0, h),
            Insn::jmp_reg(op::JGT, R0, R3, 5), // -> abort
            Insn::ldx(W, R4, R2, 0),           // wire length
            Insn::ldx(W, R3, R1, 0),           // end = skb->len
            Insn::mov64_imm(R2, h),            // start
            pseudo_call(),
            Insn::exit(),
            // abort: a value no filter returns for a header it never saw
            // would be ambiguous; the header is always there (we build it),
            // so this path only exists for the verifier.
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ],
        // SYSCALL: r1 = our context buffer (kernel memory). The filter wants
        // plain addresses: turn the pointer into a scalar. As root
        // (allow_ptr_leaks) `w2 = w1` may copy the low half, and a 4-byte
        // store over a spilled pointer turns the slot into plain data.
        Mode::Probe => vec![
            Insn::stx(DW, R10, R1, -8),
            Insn::mov32_reg(R2, R1),
            Insn::stx(W, R10, R2, -8),
            Insn::ldx(DW, R2, R10, -8), // r2 = address of the context
            Insn::ldx(W, R4, R1, 0),    // wire length
            Insn::ldx(W, R3, R1, 4),    // captured length
            Insn::alu64_imm(op::ADD, R2, h),
            Insn::alu64_reg(op::ADD, R3, R2),
            pseudo_call(),
            Insn::exit(),
        ],
    };
    link(w)
}
