//! A step-counting model of libpcap's `bpf_filter()`, used to decide
//! whether a program ends on a packet before handing it to libpcap (whose
//! interpreter loops forever on some `protochain` programs, see the AH note
//! below), and whose answer is then checked against libpcap's own.
//!
//! libpcap 1.10's `protochain` code for AH sets `X = (P[X+1] + 2) * 4`,
//! dropping the previous offset, so a packet whose AH header points back to
//! an earlier header makes libpcap's interpreter loop forever. The model
//! sees that as a state (position, A, X, scratch words) met twice at a
//! backward jump: the program is deterministic, so it never ends. The
//! translated filter returns 0 there.

use std::collections::HashSet;

use cbpf2ebpf::cbpf::op::*;
use cbpf2ebpf::cbpf::Insn;

/// What libpcap's interpreter does with a program on a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// It returns this value.
    Ends(u32),
    /// It never returns: a state repeats at a backward jump.
    Endless,
    /// The model gave up after this many backward jumps.
    TooLong,
}

/// The result of `prog` on the packet, or `None` if its path takes more
/// than `max_back` backward jumps or never ends.
pub fn run(prog: &[Insn], p: &[u8], wirelen: u32, max_back: u32) -> Option<u32> {
    match model(prog, p, wirelen, max_back) {
        Run::Ends(v) => Some(v),
        _ => None,
    }
}

/// Runs `prog` on the packet, at most `max_back` backward jumps.
pub fn model(prog: &[Insn], p: &[u8], wirelen: u32, max_back: u32) -> Run {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut back = 0u32;
    let mut pc = 0usize;
    // States at backward jumps: (pc, A, X, M).
    let mut seen: HashSet<(usize, u32, u32, [u32; 16])> = HashSet::new();
    let load = |off: u64, size: u64| -> Option<u32> {
        if off + size > p.len() as u64 {
            return None;
        }
        let o = off as usize;
        Some(match size {
            4 => u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]),
            2 => u16::from_be_bytes([p[o], p[o + 1]]) as u32,
            _ => p[o] as u32,
        })
    };
    let size = |i: &Insn| match i.size() {
        W => 4,
        H => 2,
        _ => 1,
    };
    loop {
        let Some(&i) = prog.get(pc) else {
            return Run::Ends(0);
        };
        pc += 1;
        match i.class() {
            RET => return Run::Ends(if i.rval() == A { a } else { i.k }),
            LD => match i.mode() {
                ABS => match load(i.k as u64, size(&i)) {
                    Some(v) => a = v,
                    None => return Run::Ends(0),
                },
                IND => match load(x as u64 + i.k as u64, size(&i)) {
                    Some(v) => a = v,
                    None => return Run::Ends(0),
                },
                LEN => a = wirelen,
                MEM => a = mem[i.k as usize & 15],
                _ => a = i.k,
            },
            LDX => match i.mode() {
                LEN => x = wirelen,
                MEM => x = mem[i.k as usize & 15],
                MSH => match load(i.k as u64, 1) {
                    Some(v) => x = (v & 0xf) << 2,
                    None => return Run::Ends(0),
                },
                _ => x = i.k,
            },
            ST => mem[i.k as usize & 15] = a,
            STX => mem[i.k as usize & 15] = x,
            JMP => {
                if i.op() == JA {
                    let off = i.k as i32;
                    if off < 0 {
                        back += 1;
                        if back > max_back {
                            return Run::TooLong;
                        }
                        if !seen.insert((pc, a, x, mem)) {
                            return Run::Endless;
                        }
                    }
                    pc = (pc as i64 + off as i64) as usize;
                } else {
                    let v = if i.src() == X { x } else { i.k };
                    let taken = match i.op() {
                        JEQ => a == v,
                        JGT => a > v,
                        JGE => a >= v,
                        _ => a & v != 0,
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
            }
            ALU => {
                let v = if i.src() == X { x } else { i.k };
                a = match i.op() {
                    ADD => a.wrapping_add(v),
                    SUB => a.wrapping_sub(v),
                    MUL => a.wrapping_mul(v),
                    DIV | MOD if v == 0 => return Run::Ends(0),
                    DIV => a / v,
                    MOD => a % v,
                    AND => a & v,
                    OR => a | v,
                    XOR => a ^ v,
                    // By X: 32 and more give 0; by K the C shift masks (x86).
                    LSH if i.src() == X => a.checked_shl(v).unwrap_or(0),
                    RSH if i.src() == X => a.checked_shr(v).unwrap_or(0),
                    LSH => a.wrapping_shl(v),
                    RSH => a.wrapping_shr(v),
                    _ => a.wrapping_neg(),
                };
            }
            _ => {
                if i.miscop() == TXA {
                    a = x
                } else {
                    x = a
                }
            }
        }
    }
}
