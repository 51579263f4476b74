//! Pass 1: reject what libpcap's interpreter would not run sensibly:
//! unknown opcodes, jumps outside the program, division by constant zero,
//! scratch indices past 15, a path that falls off the end.
//!
//! Backward `ja` (libpcap's `ip6 protochain` loop) is accepted: its `k` is
//! signed, as libpcap's interpreter reads it.

use crate::cbpf::{op, Insn};
use crate::Error;

/// Most cBPF instructions accepted (libpcap's own programs can exceed the
/// kernel's 4096 when filters are long).
pub const MAX_CBPF_INSNS: usize = 65536;

pub fn run(prog: &[Insn]) -> Result<(), Error> {
    if prog.is_empty() {
        return Err(Error::Empty);
    }
    if prog.len() > MAX_CBPF_INSNS {
        return Err(Error::TooManyInsns(prog.len()));
    }
    for (pc, insn) in prog.iter().enumerate() {
        check_insn(pc, insn, prog.len())?;
    }
    Ok(())
}

/// Where a jump goes: the `then` and `else` targets (the same for `ja`).
pub fn jump_targets(pc: usize, insn: &Insn) -> (i64, i64) {
    let next = pc as i64 + 1;
    if insn.op() == op::JA {
        let t = next + insn.k as i32 as i64;
        (t, t)
    } else {
        (next + insn.jt as i64, next + insn.jf as i64)
    }
}

fn check_insn(pc: usize, insn: &Insn, len: usize) -> Result<(), Error> {
    let bad = || Error::BadOpcode {
        pc,
        code: insn.code,
    };
    let mem_index = |k: u32| {
        if k < op::MEMWORDS {
            Ok(())
        } else {
            Err(Error::BadMemIndex { pc, k })
        }
    };
    match insn.class() {
        op::LD => match insn.mode() {
            op::ABS | op::IND if insn.size() != 0x18 => {}
            op::IMM | op::LEN if insn.size() == op::W => {}
            op::MEM if insn.size() == op::W => mem_index(insn.k)?,
            _ => return Err(bad()),
        },
        op::LDX => match (insn.mode(), insn.size()) {
            (op::IMM, op::W) | (op::LEN, op::W) => {}
            (op::MEM, op::W) => mem_index(insn.k)?,
            (op::MSH, op::B) => {}
            _ => return Err(bad()),
        },
        op::ST | op::STX => {
            if insn.code & !0x07 != 0 {
                return Err(bad());
            }
            mem_index(insn.k)?
        }
        op::ALU => {
            if insn.code & !0xff != 0 {
                return Err(bad());
            }
            match insn.op() {
                op::ADD | op::SUB | op::MUL | op::OR | op::AND | op::XOR => {}
                op::DIV | op::MOD => {
                    if insn.src() == op::K && insn.k == 0 {
                        return Err(Error::DivByZero { pc });
                    }
                }
                op::LSH | op::RSH => {}
                op::NEG if insn.src() == op::K => {}
                _ => return Err(bad()),
            }
        }
        op::JMP => {
            if insn.code & !0xff != 0 {
                return Err(bad());
            }
            match insn.op() {
                op::JA if insn.src() == op::K => {}
                op::JEQ | op::JGT | op::JGE | op::JSET => {}
                _ => return Err(bad()),
            }
            let (t, f) = jump_targets(pc, insn);
            for target in [t, f] {
                if target < 0 || target >= len as i64 {
                    return Err(Error::JumpOutOfRange { pc, target });
                }
            }
        }
        op::RET => match insn.rval() {
            op::K | op::A if insn.code & !0x1f == 0 => {}
            _ => return Err(bad()),
        },
        _ /* MISC */ => match insn.code {
            0x07 | 0x87 => {}
            _ => return Err(bad()),
        },
    }
    // A straight-line instruction at the end would fall off the program.
    if pc + 1 == len && !matches!(insn.class(), op::RET | op::JMP) {
        return Err(Error::NoFinalReturn);
    }
    Ok(())
}
