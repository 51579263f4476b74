//! What an instruction reads, writes and refers to, and where the
//! program's functions start: the facts every other step asks about.

use std::ops::Range;

use cbpf2ebpf::ebpf::{op, Insn, R6};

use super::refuse;
use crate::Error;

pub(super) const PSEUDO_CALL: u8 = 1;
pub(super) const PSEUDO_FUNC: u8 = 4;
pub(super) const LD_IMM64: u8 = op::LD | op::DW | op::IMM;
/// `BPF_LD | BPF_ABS` / `BPF_IND` (any size).
const LD_ABS: u8 = 0x20;
const LD_IND: u8 = 0x40;
const ATOMIC: u8 = 0xc0;
const BPF_FETCH: i32 = 0x01;
const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;

pub(super) const fn bit(r: u8) -> u16 {
    1 << r
}

/// The slot indices of the instructions in `range` (second halves of
/// `ld_imm64` skipped).
pub(super) fn slots(prog: &[Insn], range: Range<usize>) -> impl Iterator<Item = usize> + '_ {
    let mut i = range.start;
    std::iter::from_fn(move || {
        (i < range.end).then(|| {
            let at = i;
            i += if prog[at].code == LD_IMM64 { 2 } else { 1 };
            at
        })
    })
}

pub(super) fn is_call_of(prog: &[Insn], i: usize, callee: usize) -> bool {
    let x = prog[i];
    x.code == op::JMP | op::CALL && x.src == PSEUDO_CALL && target(prog, i) == Some(callee)
}

/// The slot a jump, bpf2bpf call or function address at `i` refers to.
pub(crate) fn target(prog: &[Insn], i: usize) -> Option<usize> {
    let x = prog[i];
    let rel = match (x.class(), x.code & 0xf0) {
        (op::JMP, op::CALL) if x.src == PSEUDO_CALL => i64::from(x.imm),
        (op::JMP, op::CALL | op::EXIT) => return None,
        (op::JMP32, op::JA) => i64::from(x.imm),
        (op::JMP | op::JMP32, _) => i64::from(x.off),
        (op::LD, _) if x.code == LD_IMM64 && x.src == PSEUDO_FUNC => i64::from(x.imm),
        _ => return None,
    };
    let t = i as i64 + rel + 1;
    (0..=prog.len() as i64).contains(&t).then_some(t as usize)
}

/// Sets the relative distance of a jump, call or function address.
pub(super) fn retarget(x: &mut Insn, rel: i64) -> Result<(), Error> {
    let far = || refuse(format!("a jump of {rel} instructions does not fit"));
    if x.code == op::JMP32 | op::JA || x.code == LD_IMM64 || x.code == op::JMP | op::CALL {
        x.imm = i32::try_from(rel).map_err(|_| far())?;
    } else {
        x.off = i16::try_from(rel).map_err(|_| far())?;
    }
    Ok(())
}

/// Slot 0 and every target of a bpf2bpf call or function address, sorted.
pub(super) fn function_starts(prog: &[Insn]) -> Result<Vec<usize>, Error> {
    let mut starts = vec![0];
    for i in slots(prog, 0..prog.len()) {
        let x = prog[i];
        let refers = (x.code == op::JMP | op::CALL && x.src == PSEUDO_CALL)
            || (x.code == LD_IMM64 && x.src == PSEUDO_FUNC);
        if refers {
            let t = target(prog, i)
                .filter(|&t| t < prog.len())
                .ok_or_else(|| refuse(format!("instruction {i} calls outside the program")))?;
            starts.push(t);
        }
    }
    if prog.last().is_some_and(|x| x.code == LD_IMM64) {
        return Err(refuse("the program ends in half an ld_imm64".into()));
    }
    starts.sort_unstable();
    starts.dedup();
    Ok(starts)
}

/// Registers that `x` writes, as a bit set (helper calls aside: they
/// write r0-r5, never r6-r9).
pub(crate) fn writes(x: Insn) -> u16 {
    let d = bit(x.dst);
    match x.class() {
        op::ALU | op::ALU64 | op::LDX => d,
        op::LD if x.code == LD_IMM64 => d,
        op::STX if x.code & 0xe0 == ATOMIC && x.imm & BPF_FETCH != 0 && x.imm != BPF_CMPXCHG => {
            bit(x.src)
        }
        _ => 0,
    }
}

/// Registers among r6-r9 and the rest that `x` reads, as a bit set
/// (r1-r5 of calls and r0 of exits aside: only r6-r9 are asked about).
pub(crate) fn reads(x: Insn) -> u16 {
    let (d, s) = (bit(x.dst), bit(x.src));
    let uses_src = x.code & op::X != 0;
    match x.class() {
        op::ALU | op::ALU64 => {
            let o = x.code & 0xf0;
            let dst = if o == op::MOV { 0 } else { d };
            dst | if uses_src && o != op::END { s } else { 0 }
        }
        op::LDX => s,
        op::ST => d,
        op::STX => d | s,
        op::LD if x.code & 0xe0 == LD_ABS => bit(R6),
        op::LD if x.code & 0xe0 == LD_IND => bit(R6) | s,
        op::JMP | op::JMP32 => match x.code & 0xf0 {
            op::JA | op::CALL | op::EXIT => 0,
            _ => d | if uses_src { s } else { 0 },
        },
        _ => 0,
    }
}
