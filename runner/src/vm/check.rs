//! The program checked as the kernel checks encoding and control flow
//! before it verifies: reserved fields zero, constant shifts in range, no
//! constant division by zero, jumps inside the program and not into the
//! middle of `ld_imm64`, nothing unreachable, a last `exit` or `ja`.

use cbpf2ebpf::ebpf::{helper, op, Insn};

use super::{err, VmError, MEMSX, SDIV_OFF};

pub(super) fn size_bytes(code: u8) -> usize {
    match code & 0x18 {
        op::B => 1,
        op::H => 2,
        op::W => 4,
        _ => 8,
    }
}

/// Checks encoding and control flow like the kernel does before verifying.
pub(super) fn check(p: &[Insn]) -> std::result::Result<(), VmError> {
    if p.is_empty() {
        return err(0, "empty program");
    }
    let second = second_slots(p)?;
    for (pc, &i) in p.iter().enumerate() {
        check_insn(p, &second, pc, i)?;
    }
    check_reachable(p)?;
    check_last(p, &second)
}

/// Which slots are the second halves of `ld_imm64`.
fn second_slots(p: &[Insn]) -> std::result::Result<Vec<bool>, VmError> {
    let mut second = vec![false; p.len()];
    let mut pc = 0;
    while pc < p.len() {
        let i = p[pc];
        if i.code == op::LD | op::DW | op::IMM {
            if pc + 1 >= p.len() {
                return err(pc, "ld_imm64 without its second slot");
            }
            second[pc + 1] = true;
            pc += 2;
        } else {
            pc += 1;
        }
    }
    Ok(second)
}

/// One instruction's encoding: registers, reserved fields, operands, jump
/// targets.
fn check_insn(p: &[Insn], second: &[bool], pc: usize, i: Insn) -> std::result::Result<(), VmError> {
    if second[pc] {
        if i.code != 0 || i.dst != 0 || i.src != 0 || i.off != 0 {
            return err(pc, "bad second slot of ld_imm64");
        }
        return Ok(());
    }
    if i.dst > 10 || i.src > 10 {
        return err(pc, "bad register");
    }
    let class = i.class();
    match class {
        op::LD | op::LDX | op::ST | op::STX => check_memory(p, second, pc, i),
        op::ALU | op::ALU64 => check_alu(pc, i),
        op::JMP | op::JMP32 => check_jump(p, second, pc, i),
        _ => unreachable!("3-bit class"),
    }
}

/// Loads and stores: sizes, modes and reserved fields.
fn check_memory(
    p: &[Insn],
    second: &[bool],
    pc: usize,
    i: Insn,
) -> std::result::Result<(), VmError> {
    let class = i.class();
    let target = |pc: usize, rel: i64| check_target(p, second, pc, rel);
    let reserved = || err(pc, format!("reserved fields used (code {:#04x})", i.code));
    match i.class() {
        op::LD => {
            if i.code != op::LD | op::DW | op::IMM {
                return err(pc, format!("unsupported LD instruction {:#04x}", i.code));
            }
            match i.src {
                0 => {}
                op::PSEUDO_FUNC => {
                    target(pc, i.imm as i64)?;
                    if p[pc + 1].imm != 0 {
                        return reserved();
                    }
                }
                _ => return err(pc, "ld_imm64 of a map or other pseudo value"),
            }
            if i.off != 0 || i.dst == 10 {
                return reserved();
            }
        }
        op::LDX => {
            let mode = i.code & 0xe0;
            let ok = mode == op::MEM || (mode == MEMSX && i.code & 0x18 != op::DW);
            if !ok || i.imm != 0 || i.dst == 10 {
                return err(pc, format!("bad LDX instruction {:#04x}", i.code));
            }
        }
        op::ST | op::STX => {
            if i.code & 0xe0 != op::MEM {
                return err(
                    pc,
                    format!(
                        "unsupported store {:#04x} (atomics are not supported)",
                        i.code
                    ),
                );
            }
            if class == op::ST && i.src != 0 || class == op::STX && i.imm != 0 {
                return reserved();
            }
        }
        _ => unreachable!("a memory class"),
    }
    Ok(())
}

/// ALU and ALU64: operations, operands, shifts and divisions by constants.
fn check_alu(pc: usize, i: Insn) -> std::result::Result<(), VmError> {
    let class = i.class();
    let reserved = || err(pc, format!("reserved fields used (code {:#04x})", i.code));
    let o = i.code & 0xf0;
    let x = i.code & op::X != 0;
    let bits = if class == op::ALU { 32 } else { 64 };
    if i.dst == 10 {
        return err(pc, "r10 is read only");
    }
    match o {
        op::NEG => {
            if x || i.src != 0 || i.off != 0 || i.imm != 0 {
                return reserved();
            }
        }
        op::END => {
            if i.src != 0 || i.off != 0 || !matches!(i.imm, 16 | 32 | 64) {
                return reserved();
            }
            if class == op::ALU64 && x {
                return reserved();
            }
        }
        op::ADD
        | op::SUB
        | op::MUL
        | op::OR
        | op::AND
        | op::LSH
        | op::RSH
        | op::XOR
        | op::ARSH
        | op::MOV
        | op::DIV
        | op::MOD => {
            let off_ok = match o {
                op::DIV | op::MOD => i.off == 0 || i.off == SDIV_OFF,
                op::MOV if x && class == op::ALU64 => matches!(i.off, 0 | 8 | 16 | 32),
                op::MOV if x => matches!(i.off, 0 | 8 | 16),
                _ => i.off == 0,
            };
            if !off_ok || (x && i.imm != 0) || (!x && i.src != 0) {
                return reserved();
            }
            if !x && matches!(o, op::LSH | op::RSH | op::ARSH) && !(0..bits).contains(&i.imm) {
                return err(pc, format!("invalid shift {}", i.imm));
            }
            if !x && matches!(o, op::DIV | op::MOD) && i.imm == 0 {
                return err(pc, "division by constant zero");
            }
        }
        _ => return err(pc, format!("unknown ALU operation {:#04x}", i.code)),
    }
    Ok(())
}

/// Jumps and calls: conditions, operands, targets, helpers.
fn check_jump(p: &[Insn], second: &[bool], pc: usize, i: Insn) -> std::result::Result<(), VmError> {
    let class = i.class();
    let reserved = || err(pc, format!("reserved fields used (code {:#04x})", i.code));
    let target = |pc: usize, rel: i64| check_target(p, second, pc, rel);
    let o = i.code & 0xf0;
    let x = i.code & op::X != 0;
    match o {
        op::JA => {
            if x || i.src != 0 || i.dst != 0 {
                return reserved();
            }
            if class == op::JMP {
                if i.imm != 0 {
                    return reserved();
                }
                target(pc, i.off as i64)?;
            } else {
                if i.off != 0 {
                    return reserved();
                }
                target(pc, i.imm as i64)?;
            }
        }
        op::CALL if class == op::JMP => {
            if x || i.dst != 0 || i.off != 0 {
                return reserved();
            }
            match i.src {
                0 => {
                    if !matches!(
                        i.imm,
                        helper::GET_PRANDOM_U32
                            | helper::GET_SMP_PROCESSOR_ID
                            | helper::SKB_LOAD_BYTES
                            | helper::PROBE_READ_KERNEL
                            | helper::LOOP
                    ) {
                        return err(pc, format!("helper {} is not supported", i.imm));
                    }
                }
                op::PSEUDO_CALL => target(pc, i.imm as i64)?,
                s => return err(pc, format!("unsupported call kind (src {s})")),
            }
        }
        op::EXIT if class == op::JMP => {
            if x || i.src != 0 || i.dst != 0 || i.off != 0 || i.imm != 0 {
                return reserved();
            }
        }
        op::JEQ
        | op::JGT
        | op::JGE
        | op::JSET
        | op::JNE
        | op::JSGT
        | op::JSGE
        | op::JLT
        | op::JLE
        | op::JSLT
        | op::JSLE => {
            if (x && i.imm != 0) || (!x && i.src != 0) {
                return reserved();
            }
            target(pc, i.off as i64)?;
        }
        _ => return err(pc, format!("unknown jump {:#04x}", i.code)),
    }
    Ok(())
}

/// A jump from `pc` by `rel` lands inside the program, not in the middle
/// of an `ld_imm64`.
fn check_target(
    p: &[Insn],
    second: &[bool],
    pc: usize,
    rel: i64,
) -> std::result::Result<(), VmError> {
    let t = pc as i64 + 1 + rel;
    if t < 0 || t >= p.len() as i64 {
        return err(pc, format!("jump out of range to {t}"));
    }
    if second[t as usize] {
        return err(pc, format!("jump into the middle of ld_imm64 at {t}"));
    }
    Ok(())
}

/// Like the kernel, refuse code that no path reaches.
fn check_reachable(p: &[Insn]) -> std::result::Result<(), VmError> {
    let mut seen = vec![false; p.len()];
    let mut work = vec![0usize];
    while let Some(pc) = work.pop() {
        if pc >= p.len() || seen[pc] {
            continue;
        }
        seen[pc] = true;
        let i = p[pc];
        let o = i.code & 0xf0;
        let jump = matches!(i.class(), op::JMP | op::JMP32);
        if i.class() == op::LD {
            seen[pc + 1] = true;
            work.push(pc + 2);
            if i.src == op::PSEUDO_FUNC {
                work.push((pc as i64 + 1 + i.imm as i64) as usize);
            }
        } else if jump && o == op::EXIT {
        } else if jump && o == op::JA {
            let rel = if i.class() == op::JMP {
                i.off as i64
            } else {
                i.imm as i64
            };
            work.push((pc as i64 + 1 + rel) as usize);
        } else if jump && o == op::CALL {
            if i.src == op::PSEUDO_CALL {
                work.push((pc as i64 + 1 + i.imm as i64) as usize);
            }
            work.push(pc + 1);
        } else if jump {
            work.push((pc as i64 + 1 + i.off as i64) as usize);
            work.push(pc + 1);
        } else {
            work.push(pc + 1);
        }
    }
    if let Some(pc) = seen.iter().position(|&s| !s) {
        return err(pc, "unreachable instruction");
    }
    Ok(())
}

/// The program ends in `exit` or `ja`, not in half an `ld_imm64`.
fn check_last(p: &[Insn], second: &[bool]) -> std::result::Result<(), VmError> {
    let last = p[p.len() - 1];
    let is_exit = last.code == op::JMP | op::EXIT;
    let is_ja = last.code == op::JMP | op::JA || last.code == op::JMP32 | op::JA;
    if !(is_exit || is_ja) || second[p.len() - 1] {
        return err(p.len() - 1, "last instruction is not exit or ja");
    }
    Ok(())
}
