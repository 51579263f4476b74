//! The kernel's style of cBPF conversion, as a baseline for the skb mode:
//! a tiny cBPF -> eBPF translator shaped like `bpf_convert_filter()`
//! (net/core/filter.c) that keeps packet loads as the legacy eBPF
//! `LD_ABS`/`LD_IND` instructions (valid in SCHED_CLS programs; the verifier
//! rewrites each into a call of `bpf_skb_load_helper_{8,16,32}_no_cache` and
//! an exit with 0 when the load fails).
//!
//! Registers as in the kernel: A = r0, X = r7, ctx = r6 (LD_ABS reads the
//! skb from r6), r2 = temporary for negative immediates. `ldxb 4*([k]&0xf)`
//! keeps A in r8 across the load (LD_ABS clobbers r1-r5). Scratch memory
//! M\[k\] lives at fp - (4k + 4). Only what libpcap's output for the
//! benchmark filters needs; ancillary loads and backward jumps are refused,
//! as the kernel refuses backward jumps.
//!
//! The function has the filter ABI's shape (r1 = ctx in, r0 out) so the
//! benchmark harness calls it like any other filter.

use anyhow::{bail, Result};
use cbpf2ebpf::cbpf::{self, op as c};
use cbpf2ebpf::ebpf::{op, Insn, R0, R1, R10, R2, R6, R7, R8};

const A: u8 = R0;
const X: u8 = R7;
const TMP: u8 = R2;
const CTX: u8 = R6;
const SAVE: u8 = R8;

/// `size` bits of an eBPF opcode for a cBPF size.
fn size(code: u16) -> u8 {
    match code & 0x18 {
        c::W => op::W,
        c::H => op::H,
        _ => op::B,
    }
}

/// Converts `prog`. The output ends with an `exit` on every path.
pub fn convert(prog: &[cbpf::Insn]) -> Result<Vec<Insn>> {
    // Per cBPF instruction: eBPF instructions and, for jumps, the cBPF
    // index each one targets.
    let mut out: Vec<Vec<(Insn, Option<usize>)>> = Vec::with_capacity(prog.len());
    for (i, f) in prog.iter().enumerate() {
        let mut v: Vec<(Insn, Option<usize>)> = Vec::new();
        let k = f.k as i32;
        let class = f.code & 0x07;
        match class {
            c::LD | c::LDX => {
                let dst = if class == c::LD { A } else { X };
                match f.code & 0xe0 {
                    c::IMM => v.push((Insn::mov32_imm(dst, k), None)),
                    c::MEM => v.push((Insn::ldx(op::W, dst, R10, -(f.k as i16 * 4 + 4)), None)),
                    // __sk_buff.len
                    c::LEN => v.push((Insn::ldx(op::W, dst, CTX, 0), None)),
                    c::ABS | c::IND if class == c::LD => {
                        if k < 0 {
                            bail!("ancillary load at {i}");
                        }
                        let mode = if f.code & 0xe0 == c::ABS { 0x20 } else { 0x40 };
                        let src = if mode == 0x40 { X } else { 0 };
                        v.push((Insn::new(op::LD | mode | size(f.code), 0, src, 0, k), None));
                    }
                    c::MSH if class == c::LDX => {
                        v.push((Insn::mov64_reg(SAVE, A), None));
                        v.push((Insn::new(op::LD | 0x20 | op::B, 0, 0, 0, k), None));
                        v.push((Insn::alu32_imm(op::AND, A, 0xf), None));
                        v.push((Insn::alu32_imm(op::LSH, A, 2), None));
                        v.push((Insn::mov64_reg(X, A), None));
                        v.push((Insn::mov64_reg(A, SAVE), None));
                    }
                    _ => bail!("unsupported load {:#x} at {i}", f.code),
                }
            }
            c::ST => v.push((Insn::stx(op::W, R10, A, -(f.k as i16 * 4 + 4)), None)),
            c::STX => v.push((Insn::stx(op::W, R10, X, -(f.k as i16 * 4 + 4)), None)),
            c::ALU => {
                let o = (f.code & 0xf0) as u8;
                if o == op::NEG {
                    v.push((Insn::neg32(A), None));
                } else if f.code & 0x08 == c::X {
                    if o == op::DIV || o == op::MOD {
                        v.push((Insn::mov32_reg(X, X), None));
                        v.push((Insn::jmp_imm(op::JNE, X, 0, 2), None));
                        v.push((Insn::alu32_reg(op::XOR, A, A), None));
                        v.push((Insn::exit(), None));
                    }
                    v.push((Insn::alu32_reg(o, A, X), None));
                } else {
                    v.push((Insn::alu32_imm(o, A, k), None));
                }
            }
            c::JMP => {
                let o = (f.code & 0xf0) as u8;
                if o == op::JA {
                    if f.k as usize >= prog.len() - i - 1 {
                        bail!("backward or out-of-range jump at {i} (the kernel refuses it)");
                    }
                    v.push((Insn::ja(0), Some(i + 1 + f.k as usize)));
                } else {
                    let (src_is_x, src_reg, imm) = if f.code & 0x08 == c::X {
                        (true, X, 0)
                    } else if k < 0 {
                        // eBPF immediates are sign-extended: compare with a
                        // zero-extended copy in a register instead.
                        v.push((Insn::mov32_imm(TMP, k), None));
                        (true, TMP, 0)
                    } else {
                        (false, 0, k)
                    };
                    let jmp = |o: u8| {
                        if src_is_x {
                            Insn::jmp_reg(o, A, src_reg, 0)
                        } else {
                            Insn::jmp_imm(o, A, imm, 0)
                        }
                    };
                    let jt = i + 1 + f.jt as usize;
                    let jf = i + 1 + f.jf as usize;
                    if f.jf == 0 {
                        v.push((jmp(o), Some(jt)));
                    } else if f.jt == 0 && matches!(o, op::JEQ | op::JGT | op::JGE) {
                        let inv = match o {
                            op::JEQ => op::JNE,
                            op::JGT => op::JLE,
                            _ => op::JLT,
                        };
                        v.push((jmp(inv), Some(jf)));
                    } else {
                        v.push((jmp(o), Some(jt)));
                        v.push((Insn::ja(0), Some(jf)));
                    }
                }
            }
            c::RET => {
                if f.code & 0x18 == c::K {
                    v.push((Insn::mov32_imm(R0, k), None));
                } else if f.code & 0x18 != 0x10 {
                    bail!("unsupported return {:#x} at {i}", f.code);
                }
                v.push((Insn::exit(), None));
            }
            c::MISC => {
                if f.code & 0xf8 == 0x00 {
                    v.push((Insn::mov64_reg(X, A), None)); // tax
                } else {
                    v.push((Insn::mov64_reg(A, X), None)); // txa
                }
            }
            _ => bail!("unsupported opcode {:#x} at {i}", f.code),
        }
        out.push(v);
    }
    // Prologue: A = X = 0, ctx in r6. The kernel zeroes with `w0 ^= w0`,
    // which the eBPF verifier refuses (reads an uninitialised register):
    // `w0 = 0` costs the same.
    let prologue = [
        Insn::mov32_imm(A, 0),
        Insn::mov32_imm(X, 0),
        Insn::mov64_reg(CTX, R1),
    ];
    let mut addrs = Vec::with_capacity(out.len() + 1);
    let mut n = prologue.len();
    for v in &out {
        addrs.push(n);
        n += v.len();
    }
    addrs.push(n);
    let mut insns: Vec<Insn> = prologue.to_vec();
    for v in out {
        for (mut insn, target) in v {
            if let Some(t) = target {
                let Some(&to) = addrs.get(t) else {
                    bail!("jump past the end")
                };
                let off = to as i64 - insns.len() as i64 - 1;
                insn.off = i16::try_from(off)?;
            }
            insns.push(insn);
        }
    }
    Ok(insns)
}
