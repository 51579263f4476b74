//! Running: the instruction loop with its calls and frames, the ALU, and
//! the jump conditions.

use cbpf2ebpf::ebpf::{op, Insn};

use super::check::size_bytes;
use super::memory::Machine;
use super::{err, VmError, CODE_BASE, FRAME_BYTES, MAX_FRAMES, MAX_STEPS, MEMSX, SDIV_OFF};

impl Machine<'_> {
    /// Runs the function at `pc` until it returns; `depth` frames are in
    /// use, its own included.
    pub fn exec(&mut self, mut pc: usize, depth: usize) -> std::result::Result<u64, VmError> {
        let p = self.insns;
        let mut frames: Vec<(usize, [u64; 4])> = Vec::new();
        loop {
            if pc >= p.len() {
                return err(pc, "fell off the end of the program");
            }
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return err(pc, format!("more than {MAX_STEPS} instructions executed"));
            }
            let i = p[pc];
            let (d, s) = (i.dst as usize, i.src as usize);
            let class = i.class();
            let mut next = pc + 1;
            match class {
                op::LD => {
                    self.reg[d] = if i.src == op::PSEUDO_FUNC {
                        CODE_BASE + (pc as i64 + 1 + i.imm as i64) as u64
                    } else {
                        let hi = p[pc + 1].imm as u32 as u64;
                        (hi << 32) | i.imm as u32 as u64
                    };
                    next = pc + 2;
                }
                op::LDX => {
                    let len = size_bytes(i.code);
                    let addr = self.reg[s].wrapping_add(i.off as i64 as u64);
                    let v = self.load(pc, addr, len)?;
                    self.reg[d] = if i.code & 0xe0 == MEMSX {
                        sign_extend(v, len * 8)
                    } else {
                        v
                    };
                }
                op::ST | op::STX => {
                    let len = size_bytes(i.code);
                    let addr = self.reg[d].wrapping_add(i.off as i64 as u64);
                    let v = if class == op::ST {
                        i.imm as i64 as u64
                    } else {
                        self.reg[s]
                    };
                    self.store(pc, addr, len, v)?;
                }
                op::ALU | op::ALU64 => self.alu(i),
                _ => {
                    // JMP, JMP32
                    let o = i.code & 0xf0;
                    match o {
                        op::JA => {
                            let rel = if class == op::JMP {
                                i.off as i64
                            } else {
                                i.imm as i64
                            };
                            next = (pc as i64 + 1 + rel) as usize;
                        }
                        op::CALL if i.src == op::PSEUDO_CALL => {
                            if depth + frames.len() >= MAX_FRAMES {
                                return err(pc, format!("more than {MAX_FRAMES} nested calls"));
                            }
                            frames.push((
                                pc + 1,
                                [self.reg[6], self.reg[7], self.reg[8], self.reg[9]],
                            ));
                            self.reg[10] -= FRAME_BYTES as u64;
                            next = (pc as i64 + 1 + i.imm as i64) as usize;
                        }
                        op::CALL => {
                            self.reg[0] = self.call_helper(pc, i.imm, depth + frames.len())?;
                            // r1-r5 are dead after a call: make a use visible.
                            for r in 1..=5 {
                                self.reg[r] = 0xdead_beef_dead_beef;
                            }
                        }
                        op::EXIT => match frames.pop() {
                            None => return Ok(self.reg[0]),
                            Some((ret, saved)) => {
                                self.reg[6..10].copy_from_slice(&saved);
                                self.reg[10] += FRAME_BYTES as u64;
                                next = ret;
                            }
                        },
                        _ => {
                            let b = if i.code & op::X != 0 {
                                self.reg[s]
                            } else {
                                i.imm as i64 as u64
                            };
                            let a = self.reg[d];
                            let taken = if class == op::JMP {
                                cond64(o, a, b)
                            } else {
                                cond32(o, a as u32, b as u32)
                            };
                            if taken {
                                next = (pc as i64 + 1 + i.off as i64) as usize;
                            }
                        }
                    }
                }
            }
            pc = next;
        }
    }

    fn alu(&mut self, i: Insn) {
        let d = i.dst as usize;
        let o = i.code & 0xf0;
        let x = i.code & op::X != 0;
        let src = if x {
            self.reg[i.src as usize]
        } else {
            i.imm as i64 as u64
        };
        let dst = self.reg[d];
        if i.class() == op::ALU64 {
            self.reg[d] = match o {
                op::ADD => dst.wrapping_add(src),
                op::SUB => dst.wrapping_sub(src),
                op::MUL => dst.wrapping_mul(src),
                op::DIV if i.off == SDIV_OFF => match src as i64 {
                    0 => 0,
                    -1 => (dst as i64).wrapping_neg() as u64,
                    v => ((dst as i64) / v) as u64,
                },
                op::DIV => dst.checked_div(src).unwrap_or(0),
                op::MOD if i.off == SDIV_OFF => match src as i64 {
                    0 => dst,
                    -1 => 0,
                    v => ((dst as i64) % v) as u64,
                },
                op::MOD => dst.checked_rem(src).unwrap_or(dst),
                op::OR => dst | src,
                op::AND => dst & src,
                op::XOR => dst ^ src,
                op::LSH => dst << (src & 63),
                op::RSH => dst >> (src & 63),
                op::ARSH => ((dst as i64) >> (src & 63)) as u64,
                op::NEG => (dst as i64).wrapping_neg() as u64,
                op::MOV if x && i.off != 0 => sign_extend(src, i.off as usize),
                op::MOV => src,
                op::END => match i.imm {
                    16 => (dst as u16).swap_bytes() as u64,
                    32 => (dst as u32).swap_bytes() as u64,
                    _ => dst.swap_bytes(),
                },
                _ => unreachable!("checked"),
            };
        } else {
            let (a, b) = (dst as u32, src as u32);
            let r: u32 = match o {
                op::ADD => a.wrapping_add(b),
                op::SUB => a.wrapping_sub(b),
                op::MUL => a.wrapping_mul(b),
                op::DIV if i.off == SDIV_OFF => match b as i32 {
                    0 => 0,
                    -1 => (a as i32).wrapping_neg() as u32,
                    v => ((a as i32) / v) as u32,
                },
                op::DIV => a.checked_div(b).unwrap_or(0),
                op::MOD if i.off == SDIV_OFF => match b as i32 {
                    0 => a,
                    -1 => 0,
                    v => ((a as i32) % v) as u32,
                },
                op::MOD => a.checked_rem(b).unwrap_or(a),
                op::OR => a | b,
                op::AND => a & b,
                op::XOR => a ^ b,
                op::LSH => a << (b & 31),
                op::RSH => a >> (b & 31),
                op::ARSH => ((a as i32) >> (b & 31)) as u32,
                op::NEG => (a as i32).wrapping_neg() as u32,
                op::MOV if x && i.off != 0 => sign_extend(b as u64, i.off as usize) as u32,
                op::MOV => b,
                op::END => {
                    let v = if i.code & op::TO_BE != 0 {
                        match i.imm {
                            16 => (dst as u16).swap_bytes() as u64,
                            32 => (dst as u32).swap_bytes() as u64,
                            _ => dst.swap_bytes(),
                        }
                    } else {
                        match i.imm {
                            16 => dst as u16 as u64,
                            32 => dst as u32 as u64,
                            _ => dst,
                        }
                    };
                    // BPF_END keeps 64 bits for imm 64.
                    self.reg[d] = v;
                    return;
                }
                _ => unreachable!("checked"),
            };
            self.reg[d] = r as u64;
        }
    }
}

fn sign_extend(v: u64, bits: usize) -> u64 {
    if bits >= 64 {
        return v;
    }
    let shift = 64 - bits;
    (((v << shift) as i64) >> shift) as u64
}

/// Jump condition `o` on 64-bit operands.
fn cond64(o: u8, a: u64, b: u64) -> bool {
    cond(o, (a, b), (a as i64, b as i64))
}

/// Jump condition `o` on 32-bit operands: zero-extended for the unsigned
/// tests, sign-extended for the signed ones, the same answers.
fn cond32(o: u8, a: u32, b: u32) -> bool {
    cond(
        o,
        (u64::from(a), u64::from(b)),
        (i64::from(a as i32), i64::from(b as i32)),
    )
}

fn cond(o: u8, (a, b): (u64, u64), (sa, sb): (i64, i64)) -> bool {
    match o {
        op::JEQ => a == b,
        op::JNE => a != b,
        op::JGT => a > b,
        op::JGE => a >= b,
        op::JLT => a < b,
        op::JLE => a <= b,
        op::JSET => a & b != 0,
        op::JSGT => sa > sb,
        op::JSGE => sa >= sb,
        op::JSLT => sa < sb,
        op::JSLE => sa <= sb,
        _ => unreachable!("checked"),
    }
}
