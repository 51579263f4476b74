//! How deep a function's stack frame reaches below `r10`.

use std::ops::Range;

use cbpf2ebpf::ebpf::{op, Insn, R10};

use super::insn::{bit, slots, writes};
use super::refuse;
use crate::Error;

/// How many bytes below `r10` the function's stack objects reach.
///
/// A stack pointer offset by a register is refused in a caller (where its
/// objects are could not be known) and taken as offset by a non-negative
/// index in the body (the translator's indexed reads of its packet copy;
/// the verifier still bounds every access).
pub(super) fn frame_depth(
    prog: &[Insn],
    range: Range<usize>,
    indexed: Indexed,
) -> Result<i64, Error> {
    // Registers holding r10 + k, in instruction order (compiled code derives
    // a stack pointer right where it uses it).
    let mut derived: [Option<i64>; 11] = [None; 11];
    derived[R10 as usize] = Some(0);
    let mut depth = 0i64;
    for i in slots(prog, range) {
        let x = prog[i];
        let base = match x.class() {
            op::LDX => Some(x.src),
            op::ST | op::STX => Some(x.dst),
            _ => None,
        };
        if let Some(k) = base.and_then(|b| derived[b as usize]) {
            depth = depth.max(-(k + i64::from(x.off)));
        }
        let d = x.dst as usize;
        let o = x.code & 0xf0;
        if x.code == op::ALU64 | op::MOV | op::X {
            derived[d] = derived[x.src as usize];
        } else if let (op::ALU64, op::ADD | op::SUB, Some(k)) = (x.class(), o, derived[d]) {
            if x.code & op::X != 0 {
                if indexed == Indexed::Refused {
                    return Err(refuse(format!(
                        "instruction {i} offsets a stack pointer by a register"
                    )));
                }
                continue;
            }
            let step = i64::from(x.imm);
            derived[d] = Some(if o == op::ADD { k + step } else { k - step });
        } else if x.code == op::JMP | op::CALL {
            derived[..6].fill(None);
        } else if writes(x) & bit(x.dst) != 0 && d != R10 as usize {
            derived[d] = None;
        } else if writes(x) != 0 {
            derived[x.src as usize] = None; // atomic fetch
        }
        if let Some(k) = derived[d] {
            depth = depth.max(-k);
        }
    }
    Ok(depth)
}

/// What a stack pointer offset by a register means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Indexed {
    Refused,
    NonNegative,
}
