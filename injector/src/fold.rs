//! Settings a loader knows: loads from frozen read-only maps.
//!
//! xcap's programs read their settings (snap length, wakeups, counters on
//! or off) from `.rodata`, which the loader fills and freezes before the
//! program is loaded. The verifier then knows each value and prunes the
//! branches on it, but keeps the loads themselves: an `ld_imm64` of the
//! value's address and a load through it, on every packet.
//! [`frozen_loads`] turns each
//! `rA = map_value(fd, off); rB = *(size *)(rA + k)` of a map the caller
//! names into `rB = value`, and the address's two slots into `ja +0`
//! (which the verifier removes) unless the address is read again (`rA`
//! live after the load, as far as a look down the straight path after it
//! tells): every other instruction stays where it was. With no load of a
//! setting left, a captured packet's path does not touch the settings'
//! cache line at all.
//!
//! ```
//! use cbpf2ebpf::ebpf::{op, Insn, R0, R1};
//! use injector::fold::{frozen_loads, Frozen};
//!
//! let prog = [
//!     Insn::new(op::LD | op::DW | op::IMM, R1, 2, 0, 7), // map fd 7, offset 4
//!     Insn::new(0, 0, 0, 0, 4),
//!     Insn::ldx(op::W, R1, R1, 0),
//!     Insn::mov64_reg(R0, R1),
//!     Insn::exit(),
//! ];
//! let data = [0, 0, 0, 0, 96, 0, 0, 0];
//! let (folded, n) = frozen_loads(&prog, &[Frozen { fd: 7, data: &data }]);
//! assert_eq!(n, 1);
//! assert_eq!(folded[..3], [Insn::ja(0), Insn::ja(0), Insn::mov32_imm(R1, 96)]);
//! ```

use cbpf2ebpf::ebpf::{op, Insn};

const LD_IMM64: u8 = op::LD | op::DW | op::IMM;
/// `BPF_PSEUDO_MAP_VALUE`: an `ld_imm64` of a map value's address.
const PSEUDO_MAP_VALUE: u8 = 2;
const PSEUDO_CALL: u8 = 1;
const PSEUDO_FUNC: u8 = 4;

/// A frozen map the program reads: its fd (as relocated into the
/// program's `ld_imm64`s) and its value.
#[derive(Clone, Copy, Debug)]
pub struct Frozen<'a> {
    pub fd: i32,
    pub data: &'a [u8],
}

/// `prog` with each load of a [`Frozen`] value replaced by the value, and
/// how many were. A load is left alone when a jump lands on it or on the
/// address's second slot, or when its value does not fit an immediate.
pub fn frozen_loads(prog: &[Insn], maps: &[Frozen<'_>]) -> (Vec<Insn>, usize) {
    let mut out = prog.to_vec();
    let targets = jump_targets(prog);
    let mut folded = 0;
    let mut i = 0;
    while i + 2 < prog.len() {
        let (x, load) = (prog[i], prog[i + 2]);
        if x.code != LD_IMM64 {
            i += 1;
            continue;
        }
        let value = maps
            .iter()
            .find(|m| x.src == PSEUDO_MAP_VALUE && x.imm == m.fd)
            .filter(|_| {
                load.class() == op::LDX
                    && load.code & 0xe0 == op::MEM
                    && load.src == x.dst
                    && !targets[i + 1]
                    && !targets[i + 2]
            })
            .and_then(|m| {
                let at = u64::from(prog[i + 1].imm as u32).checked_add_signed(load.off.into())?;
                let size = match load.code & 0x18 {
                    op::W => 4,
                    op::H => 2,
                    op::B => 1,
                    _ => 8,
                };
                let bytes = m.data.get(at as usize..at as usize + size)?;
                let mut v = [0u8; 8];
                v[..size].copy_from_slice(bytes);
                Some((u64::from_le_bytes(v), size))
            });
        let replacement = match value {
            Some((v, 8)) => i32::try_from(v as i64)
                .ok()
                .map(|imm| Insn::mov64_imm(load.dst, imm)),
            // A 32-bit move zero-extends, as the narrower loads do.
            Some((v, _)) => Some(Insn::mov32_imm(load.dst, v as u32 as i32)),
            None => None,
        };
        match replacement {
            Some(mov) => {
                if load.dst == x.dst || dead_after(prog, i + 3, x.dst) {
                    out[i] = Insn::ja(0);
                    out[i + 1] = Insn::ja(0);
                }
                out[i + 2] = mov;
                folded += 1;
                i += 3;
            }
            None => i += 2,
        }
    }
    (out, folded)
}

/// Whether register `r` is dead from slot `from` on: on every path from
/// there it is written before it is read, or the program exits without
/// reading it. A call taking arguments in `r` (r1-r5) reads it; a call
/// writes r0 and leaves r1-r5 unreadable.
fn dead_after(prog: &[Insn], from: usize, r: u8) -> bool {
    let bit = 1u16 << r;
    let mut seen = vec![false; prog.len() + 1];
    let mut todo = vec![from];
    while let Some(j) = todo.pop() {
        let Some(&x) = prog.get(j) else {
            return false; // off the end: not a program the kernel takes
        };
        if std::mem::replace(&mut seen[j], true) {
            continue;
        }
        let o = x.code & 0xf0;
        let next = j + if x.code == LD_IMM64 { 2 } else { 1 };
        match x.class() {
            op::JMP | op::JMP32 => match o {
                op::EXIT if r == 0 => return false,
                op::EXIT => {}
                op::CALL if (1..=5).contains(&r) => return false,
                op::CALL if r == 0 => {}
                op::CALL => todo.push(next),
                _ => {
                    if crate::inline::reads(x) & bit != 0 {
                        return false;
                    }
                    let Some(t) = crate::inline::target(prog, j) else {
                        return false;
                    };
                    todo.push(t);
                    if o != op::JA {
                        todo.push(next);
                    }
                }
            },
            // Legacy packet loads clobber r0-r5: not worth following.
            op::LD if x.code != LD_IMM64 => return false,
            _ => {
                if crate::inline::reads(x) & bit != 0 {
                    return false;
                }
                if crate::inline::writes(x) & bit == 0 {
                    todo.push(next);
                }
            }
        }
    }
    true
}

/// Which slots a jump, call or function address lands on.
fn jump_targets(prog: &[Insn]) -> Vec<bool> {
    let mut t = vec![false; prog.len() + 1];
    let mut i = 0;
    while i < prog.len() {
        let x = prog[i];
        let o = x.code & 0xf0;
        let rel = match x.class() {
            op::JMP if o == op::CALL && x.src == PSEUDO_CALL => Some(i64::from(x.imm)),
            op::JMP if o == op::CALL || o == op::EXIT => None,
            op::JMP32 if o == op::JA => Some(i64::from(x.imm)),
            op::JMP | op::JMP32 => Some(i64::from(x.off)),
            op::LD if x.code == LD_IMM64 && x.src == PSEUDO_FUNC => Some(i64::from(x.imm)),
            _ => None,
        };
        if let Some(to) = rel.and_then(|r| usize::try_from(i as i64 + r + 1).ok()) {
            if to < t.len() {
                t[to] = true;
            }
        }
        i += if x.code == LD_IMM64 { 2 } else { 1 };
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbpf2ebpf::ebpf::{R0, R1, R2};

    fn ld_value(dst: u8, fd: i32, off: i32) -> [Insn; 2] {
        [
            Insn::new(LD_IMM64, dst, PSEUDO_MAP_VALUE, 0, fd),
            Insn::new(0, 0, 0, 0, off),
        ]
    }

    #[test]
    fn loads_of_other_maps_and_jump_targets_stay() {
        let data = [1u8, 0, 0, 0, 2, 0, 0, 0];
        let maps = [Frozen { fd: 7, data: &data }];
        let [a, b] = ld_value(R1, 8, 0); // another map
        let [c, d] = ld_value(R1, 7, 0);
        let prog = [
            a,
            b,
            Insn::ldx(op::W, R1, R1, 0),
            Insn::jmp_imm(op::JEQ, R0, 0, 2), // -> 6, the load below
            c,
            d,
            Insn::ldx(op::W, R1, R1, 4),
            Insn::exit(),
        ];
        let (out, n) = frozen_loads(&prog, &maps);
        assert_eq!((out, n), (prog.to_vec(), 0));
    }

    #[test]
    fn loads_into_other_registers_fold_and_dead_addresses_go() {
        let data = [1u8, 0, 0, 0, 2, 0, 0, 0];
        let maps = [Frozen { fd: 7, data: &data }];
        let [a, b] = ld_value(R2, 7, 0);
        // r2 is written before it is read again: the address goes.
        let prog = [
            a,
            b,
            Insn::ldx(op::W, R1, R2, 4),
            Insn::mov64_imm(R2, 0),
            Insn::exit(),
        ];
        let (out, n) = frozen_loads(&prog, &maps);
        assert_eq!(n, 1);
        assert_eq!(out[..3], [Insn::ja(0), Insn::ja(0), Insn::mov32_imm(R1, 2)]);
        // r2 is read again, passed to a call, or compared: the address
        // stays, the load still folds.
        for after in [
            Insn::ldx(op::W, R0, R2, 0),
            Insn::call_helper(1),
            Insn::jmp_imm(op::JEQ, R2, 0, 0),
        ] {
            let prog = [a, b, Insn::ldx(op::W, R1, R2, 4), after, Insn::exit()];
            let (out, n) = frozen_loads(&prog, &maps);
            assert_eq!(n, 1);
            assert_eq!(out[..3], [a, b, Insn::mov32_imm(R1, 2)], "{after:?}");
        }
        // Past a branch, both ways: read on one of them keeps it.
        let branch = |taken: Insn| {
            let prog = [
                a,
                b,
                Insn::ldx(op::W, R1, R2, 4),
                Insn::jmp_imm(op::JEQ, R1, 0, 2), // -> 6
                Insn::mov64_imm(R2, 0),
                Insn::exit(),
                taken,
                Insn::exit(),
            ];
            frozen_loads(&prog, &maps).0[0]
        };
        assert_eq!(branch(Insn::mov64_imm(R2, 1)), Insn::ja(0));
        assert_eq!(branch(Insn::mov64_reg(R0, R2)), a);
        // At the exit only r0 is read.
        let prog = [a, b, Insn::ldx(op::W, R1, R2, 4), Insn::exit()];
        assert_eq!(frozen_loads(&prog, &maps).0[0], Insn::ja(0));
    }

    #[test]
    fn byte_and_offset_loads_fold() {
        let data = [0u8, 0, 0, 0, 0, 0xff, 0, 0];
        let maps = [Frozen { fd: 3, data: &data }];
        let [a, b] = ld_value(R1, 3, 4);
        let prog = [a, b, Insn::ldx(op::B, R1, R1, 1), Insn::exit()];
        let (out, n) = frozen_loads(&prog, &maps);
        assert_eq!(n, 1);
        assert_eq!(out[2], Insn::mov32_imm(R1, 0xff));
        // Past the value's end: left alone.
        let [a, b] = ld_value(R1, 3, 6);
        let prog = [a, b, Insn::ldx(op::W, R1, R1, 0), Insn::exit()];
        assert_eq!(frozen_loads(&prog, &maps).1, 0);
    }
}
