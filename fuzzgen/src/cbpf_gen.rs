//! Random cBPF programs that libpcap's interpreter runs safely and that
//! terminate within the translator's loop bound:
//!
//! - every opcode the interpreter knows, with any `jt`/`jf` (and garbage in
//!   the fields an opcode ignores), division and modulo by X (zero
//!   included), shifts by X of 32 and more, shifts by constants below 32
//!   (larger ones are undefined in C and refused by the translator);
//! - scratch memory is written before it is read on every path (the
//!   interpreter's `mem[]` is uninitialised): a data-flow pass rewrites reads
//!   of possibly unwritten words;
//! - backward `ja`s are guarded by a countdown in scratch word 15, set once
//!   at entry and only ever decremented, so no path takes more backward
//!   jumps than that; no jump lands inside a guard. Budgets are up to 32,
//!   and [`lengthen_loops`] makes some of them up to [`MAX_BUDGET`] (the
//!   translator's loop callback must stay exact on every one; none come
//!   near `bpf_loop`'s 2^23).

use cbpf2ebpf::cbpf::op::*;
use cbpf2ebpf::cbpf::{ancillary, Insn};

use crate::packet::{self, Packet};
use crate::Src;

/// The scratch word holding the backward-jump budget.
const COUNTER: u32 = 15;

/// Most body instructions generated.
pub const MAX_BODY: usize = 48;

/// The largest backward-jump budget of a generated program.
pub const MAX_BUDGET: u32 = 100_000;

fn load_offset(s: &mut Src) -> u32 {
    match s.below(10) {
        0..=4 => s.byte() as u32 % 64,
        5 => s.byte() as u32,
        6 => ancillary::OFF + 4 * s.below(ancillary::MAX as usize / 4 + 1) as u32,
        7 => *s.pick(&[
            0xffff_ffff,
            0xffff_fffe,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_f000,
            65535,
            65536,
        ]),
        8 => s.u32(),
        _ => s.byte() as u32 % 16,
    }
}

fn value(s: &mut Src) -> u32 {
    match s.below(6) {
        0 => s.byte() as u32 % 8,
        1 => *s.pick(&[
            0,
            1,
            2,
            31,
            32,
            33,
            0xffff_ffff,
            0x8000_0000,
            0x7fff_ffff,
            0x800,
            0x86dd,
        ]),
        2 => s.u32(),
        3 => s.byte() as u32,
        _ => s.byte() as u32 % 64,
    }
}

/// A random instruction, jumps still to be fixed up (`jt`/`jf`/`k` are raw).
fn random_insn(s: &mut Src, loops: bool) -> Insn {
    let sizes = [W, H, B];
    let stores = if loops { COUNTER } else { MEMWORDS };
    let mut i = match s.below(22) {
        0 | 1 => Insn::new(LD | *s.pick(&sizes) | ABS, 0, 0, load_offset(s)),
        2 | 3 => Insn::new(LD | *s.pick(&sizes) | IND, 0, 0, load_offset(s)),
        4 => Insn::new(*s.pick(&[LD | W | LEN, LDX | W | LEN]), 0, 0, s.u32()),
        5 => Insn::new(LDX | MSH | B, 0, 0, load_offset(s)),
        6 => Insn::new(*s.pick(&[LD | IMM, LDX | IMM]), 0, 0, value(s)),
        7 => Insn::new(*s.pick(&[LD | MEM, LDX | MEM]), 0, 0, s.below(16) as u32),
        8 => Insn::new(*s.pick(&[ST, STX]), 0, 0, s.below(stores as usize) as u32),
        9..=12 => {
            let op = *s.pick(&[ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH]);
            if s.chance(100) {
                Insn::new(ALU | op | X, 0, 0, s.u32())
            } else {
                let k = match op {
                    DIV | MOD => value(s).max(1),
                    LSH | RSH => s.below(32) as u32,
                    _ => value(s),
                };
                Insn::new(ALU | op | K, 0, 0, k)
            }
        }
        13 => Insn::new(ALU | NEG, 0, 0, s.u32()),
        14 => Insn::new(JMP | JA, s.byte(), s.byte(), s.u32()),
        15..=18 => {
            let op = *s.pick(&[JEQ, JGT, JGE, JSET]);
            let src = if s.chance(80) { X } else { K };
            Insn::new(JMP | op | src, s.byte(), s.byte(), value(s))
        }
        19 => Insn::new(*s.pick(&[MISC | TAX, MISC | TXA]), 0, 0, s.u32()),
        20 => Insn::new(
            RET | K,
            0,
            0,
            *s.pick(&[0, 1, 0xffff, 262_144, 0xffff_ffff]),
        ),
        _ => Insn::new(RET | A, 0, 0, s.u32()),
    };
    // Fields the opcode ignores, now and then not zero.
    if i.class() != JMP && s.chance(24) {
        i.jt = s.byte();
        i.jf = s.byte();
    }
    i
}

/// A program for the `cbpf` target. Layout: `[LD #c; ST M[15]]` when it has
/// loops, the body, a final `ret`.
pub fn program(s: &mut Src) -> Vec<Insn> {
    let loops = s.chance(96);
    let mut prog = Vec::new();
    // Guards: (start pc, pc of the backward ja).
    let mut guards: Vec<(usize, usize)> = Vec::new();
    if loops {
        // Made longer by `lengthen_loops`, after everything else is read.
        let budget = s.below(33) as u32;
        prog.push(Insn::new(LD | IMM, 0, 0, budget));
        prog.push(Insn::new(ST, 0, 0, COUNTER));
    }
    let body_start = prog.len();
    let n = 1 + s.below(MAX_BODY);
    for _ in 0..n {
        // Past the input's end every choice is 0: stop rather than pad.
        if s.exhausted() && prog.len() > body_start {
            break;
        }
        if loops && s.chance(20) {
            // The guard: if budget == 0 skip the ja; else budget -= 1 and
            // jump back (target fixed below).
            let start = prog.len();
            prog.push(Insn::new(LD | MEM, 0, 0, COUNTER));
            prog.push(Insn::new(JMP | JEQ | K, 3, 0, 0));
            prog.push(Insn::new(ALU | SUB | K, 0, 0, 1));
            prog.push(Insn::new(ST, 0, 0, COUNTER));
            prog.push(Insn::new(JMP | JA, s.byte(), s.byte(), 0));
            guards.push((start, start + 4));
        } else {
            prog.push(random_insn(s, loops));
        }
    }
    prog.push(if s.chance(128) {
        Insn::new(RET | A, 0, 0, 0)
    } else {
        Insn::new(RET | K, 0, 0, *s.pick(&[262_144, 0xffff, 1, 0]))
    });
    let len = prog.len();

    // Guard interiors no jump may land in.
    let mut protected = vec![false; len];
    for &(start, ja) in &guards {
        protected[start + 1..=ja].iter_mut().for_each(|p| *p = true);
    }
    // The guard start that owns a protected pc.
    let owner = |pc: usize| {
        guards
            .iter()
            .find(|&&(g, ja)| g < pc && pc <= ja)
            .map(|&(g, _)| g)
    };
    let is_guard_insn = |pc: usize| guards.iter().any(|&(g, ja)| g < pc && pc <= ja);

    for (pc, insn) in prog.iter_mut().enumerate().take(len) {
        if is_guard_insn(pc) {
            continue;
        }
        if insn.class() != JMP {
            continue;
        }
        let room = len - 1 - (pc + 1); // the largest forward offset
        let fix = |off: usize| -> usize {
            let target = pc + 1 + off;
            match owner(target) {
                Some(g) => g - (pc + 1),
                None => off,
            }
        };
        if insn.op() == JA {
            let off = insn.k as usize % (room + 1);
            insn.k = fix(off) as u32;
        } else {
            let room8 = room.min(255);
            // Mostly short jumps.
            let jt = if insn.jt < 200 {
                insn.jt as usize % (room8.min(8) + 1)
            } else {
                insn.jt as usize % (room8 + 1)
            };
            let jf = if insn.jf < 200 {
                insn.jf as usize % (room8.min(8) + 1)
            } else {
                insn.jf as usize % (room8 + 1)
            };
            insn.jt = fix(jt) as u8;
            insn.jf = fix(jf) as u8;
        }
    }
    // Backward targets: anywhere in the body up to the guard, not inside a
    // guard.
    for &(start, ja) in &guards {
        let choices: Vec<usize> = (body_start..=start).filter(|&t| !protected[t]).collect();
        let target = *s.pick(&choices);
        prog[ja].k = (target as i64 - (ja as i64 + 1)) as i32 as u32;
    }
    fix_scratch_reads(&mut prog);
    prog
}

/// Now and then a longer budget for a program with loops, from the input's
/// last bytes: read after the program and its packets, so that inputs
/// written before it existed (the regression corpus) decode as they did.
pub fn lengthen_loops(prog: &mut [Insn], s: &mut Src) {
    let has_loops =
        prog.len() > 2 && prog[0].code == LD | IMM && prog[1].code == ST && prog[1].k == COUNTER;
    if !has_loops {
        return;
    }
    let budget = match s.byte() {
        0..=127 => return,
        128..=223 => 33 + s.below(2_000),
        _ => s.below(MAX_BUDGET as usize + 1),
    };
    prog[0].k = budget as u32;
}

/// For each pc, the scratch words written on every path into it (`None`:
/// not reached).
fn scratch_written(prog: &[Insn]) -> Vec<Option<u16>> {
    let len = prog.len();
    let mut written: Vec<Option<u16>> = vec![None; len];
    written[0] = Some(0);
    let mut work = vec![0usize];
    while let Some(pc) = work.pop() {
        let insn = prog[pc];
        let mut out = written[pc].unwrap();
        if insn.code == ST || insn.code == STX {
            out |= 1 << insn.k;
        }
        let succ: Vec<usize> = match insn.class() {
            RET => vec![],
            JMP if insn.op() == JA => vec![(pc as i64 + 1 + insn.k as i32 as i64) as usize],
            JMP => vec![pc + 1 + insn.jt as usize, pc + 1 + insn.jf as usize],
            _ => vec![pc + 1],
        };
        for t in succ {
            let new = match written[t] {
                None => out,
                Some(old) => old & out,
            };
            if written[t] != Some(new) {
                written[t] = Some(new);
                work.push(t);
            }
        }
    }
    written
}

/// Whether some path reads a scratch word before writing it. libpcap's
/// interpreter then reads stack garbage, so its answer is undefined
/// (libpcap 1.10.3 emits such code, e.g. for `geneve or mpls 1`); xcap
/// reads 0.
pub fn reads_scratch_before_write(prog: &[Insn]) -> bool {
    let written = scratch_written(prog);
    prog.iter().zip(&written).any(|(insn, w)| {
        (insn.code == LD | MEM || insn.code == LDX | MEM)
            && w.is_some_and(|w| w & (1 << insn.k) == 0)
    })
}

/// Rewrites every scratch read that some path reaches before a write of
/// that word: to a word written on every path, or to a load of a constant.
fn fix_scratch_reads(prog: &mut [Insn]) {
    let len = prog.len();
    let written = scratch_written(prog);
    for pc in 0..len {
        let insn = &mut prog[pc];
        if insn.code != LD | MEM && insn.code != LDX | MEM {
            continue;
        }
        let Some(w) = written[pc] else { continue };
        if w & (1 << insn.k) != 0 {
            continue;
        }
        if w != 0 {
            // The next written word, cyclically.
            let k = (0..16)
                .map(|d| (insn.k + d) % 16)
                .find(|&k| w & (1 << k) != 0)
                .unwrap();
            insn.k = k;
        } else {
            insn.code = if insn.code == LD | MEM {
                LD | IMM
            } else {
                LDX | IMM
            };
        }
    }
}

/// 1-4 packets for a cBPF program: random bytes or structured ones.
pub fn packets(s: &mut Src) -> Vec<Packet> {
    let n = 1 + s.below(4);
    (0..n)
        .map(|_| {
            if s.chance(128) {
                let len = s.below(80);
                let mut data = s.bytes(len);
                data.resize(len, 0);
                let wirelen = if s.chance(32) { s.u32() } else { len as u32 };
                Packet { data, wirelen }
            } else {
                packet::packet(s, cbpf2ebpf::libpcap::DLT_EN10MB)
            }
        })
        .collect()
}

/// `-ddd`/`-dd`-like text for the parsers: numbers in both radixes, commas,
/// braces, stray tokens, wrong counts.
pub fn listing_text(s: &mut Src) -> String {
    let dd = s.chance(128);
    let mut t = String::new();
    let lines = s.below(8);
    if !dd {
        t.push_str(&format!(
            "{}\n",
            if s.chance(200) {
                lines as u64
            } else {
                s.u32() as u64 * 0x1_0000_0001
            }
        ));
    }
    let num = |s: &mut Src| -> String {
        match s.below(8) {
            0 => format!("{:#x}", s.u32()),
            1 => format!("{:#X}", s.byte()),
            2 => format!("{}", (s.u32() as u64).wrapping_mul(7_000_000_000)),
            3 => format!("-{}", s.byte()),
            4 => String::new(),
            _ => format!("{}", s.byte()),
        }
    };
    for _ in 0..lines {
        let f: Vec<String> = (0..3 + s.below(3)).map(|_| num(s)).collect();
        let sep = *s.pick(&[" ", ", ", ",", "\t", "  "]);
        let line = f.join(sep);
        if dd {
            t.push_str(&format!("{{ {line} }}{}", s.pick(&[",", "", ",,", " ,"])));
        } else {
            t.push_str(&line);
        }
        t.push_str(s.pick::<&str>(&["\n", ",", "\r\n", "\n\n", " \n"]));
        if s.chance(16) {
            t.push(s.byte() as char);
        }
    }
    t
}
