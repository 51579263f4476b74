//! Settings a loader knows: loads from frozen read-only maps.
//!
//! xcap's programs read their settings (snap length, wakeups, counters on
//! or off) from `.rodata`, which the loader fills and freezes before the
//! program is loaded. The verifier then knows each value and prunes the
//! branches on it, but keeps the loads themselves: an `ld_imm64` of the
//! value's address and a load through it, on every packet.
//! [`frozen_loads`] turns each
//! `rX = map_value(fd, off); rX = *(size *)(rX + k)` of a map the caller
//! names into `rX = value`, the two slots before it into `ja +0` (which
//! the verifier removes): every other instruction stays where it was.
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
/// how many were. A load is left alone when a jump lands on it, when its
/// address register differs from its destination (the address may be
/// used again), or when its value does not fit an immediate.
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
                    && load.dst == x.dst
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
                .map(|imm| Insn::mov64_imm(x.dst, imm)),
            // A 32-bit move zero-extends, as the narrower loads do.
            Some((v, _)) => Some(Insn::mov32_imm(x.dst, v as u32 as i32)),
            None => None,
        };
        match replacement {
            Some(mov) => {
                out[i] = Insn::ja(0);
                out[i + 1] = Insn::ja(0);
                out[i + 2] = mov;
                folded += 1;
                i += 3;
            }
            None => i += 2,
        }
    }
    (out, folded)
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
    fn loads_of_other_maps_jump_targets_and_kept_addresses_stay() {
        let data = [1u8, 0, 0, 0, 2, 0, 0, 0];
        let maps = [Frozen { fd: 7, data: &data }];
        let [a, b] = ld_value(R1, 8, 0); // another map
        let [c, d] = ld_value(R1, 7, 0);
        let [e, f] = ld_value(R2, 7, 0); // address kept in r2
        let prog = [
            a,
            b,
            Insn::ldx(op::W, R1, R1, 0),
            Insn::jmp_imm(op::JEQ, R0, 0, 2), // -> 6, the load below
            c,
            d,
            Insn::ldx(op::W, R1, R1, 4),
            e,
            f,
            Insn::ldx(op::W, R1, R2, 4),
            Insn::exit(),
        ];
        let (out, n) = frozen_loads(&prog, &maps);
        assert_eq!((out, n), (prog.to_vec(), 0));
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
