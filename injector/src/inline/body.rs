//! The callee, checked for what inlining needs, and its body emitted for
//! one call site.

use std::ops::Range;

use cbpf2ebpf::ebpf::{op, Insn, R1, R10, R5};

use super::flow::unreachable;
use super::frame::{frame_depth, Indexed};
use super::insn::{bit, reads, retarget, slots, target, writes, LD_IMM64, PSEUDO_FUNC};
use super::refuse;
use crate::Error;

const HELPER_TAIL_CALL: i32 = 12;

/// One call site: where the body's frame goes and what it saves.
pub(super) struct Site {
    /// The caller's frame, rounded to 8 bytes: the saves start below it.
    pub caller: i64,
    /// How far the body's r10-relative offsets move down.
    pub shift: i64,
    pub saved: Vec<u8>,
    /// Callee-saved registers the body uses under another name: (r6-r9,
    /// a scratch register the body leaves alone).
    pub renamed: Vec<(u8, u8)>,
}

/// The callee, checked for what inlining needs.
pub(super) struct Body {
    pub range: Range<usize>,
    /// Bit set of r6-r9 the body writes.
    pub writes: u16,
    /// Bytes of stack below r10 the body uses.
    pub frame: i64,
    /// r1-r5 the body neither reads nor writes, when it calls nothing
    /// (a helper call would clobber them): room for its r6-r9.
    pub unused_scratch: Vec<u8>,
}

impl Body {
    pub fn analyse(prog: &[Insn], range: Range<usize>) -> Result<Body, Error> {
        let mut writes_mask = 0;
        let mut uses = 0;
        let mut calls = false;
        for i in slots(prog, range.clone()) {
            let x = prog[i];
            let at = |what: &str| {
                refuse(format!(
                    "instruction {} of the filter {what}",
                    i - range.start
                ))
            };
            match x.class() {
                op::JMP | op::JMP32 => match x.code & 0xf0 {
                    op::CALL if x.src != 0 => return Err(at("calls a BPF function")),
                    op::CALL if x.imm == HELPER_TAIL_CALL => return Err(at("tail-calls")),
                    op::CALL | op::EXIT => {}
                    _ => {
                        let t = target(prog, i).filter(|t| range.contains(t) || *t == range.end);
                        if t.is_none() {
                            return Err(at("jumps out of it"));
                        }
                    }
                },
                op::LD
                    if x.code == LD_IMM64
                        && x.src == PSEUDO_FUNC
                        && target(prog, i).is_none_or(|t| range.contains(&t)) =>
                {
                    return Err(at("takes the address of a place inside itself"));
                }
                op::LD if x.code == LD_IMM64 && x.src == PSEUDO_FUNC => {}
                op::LD if x.code != LD_IMM64 => return Err(at("is a legacy packet load")),
                _ => {}
            }
            if x.dst == R10 && (writes(x) != 0 || matches!(x.class(), op::ALU | op::ALU64)) {
                return Err(at("writes r10"));
            }
            let r10_src = x.src == R10 && x.code != LD_IMM64;
            let allowed = match x.class() {
                op::LDX => true,
                op::ALU64 => x.code == op::ALU64 | op::MOV | op::X,
                _ => false,
            };
            if r10_src && !allowed {
                return Err(at("uses r10 other than as a base or a copy"));
            }
            writes_mask |= writes(x);
            uses |= reads(x) | writes(x);
            calls |= x.code == op::JMP | op::CALL;
        }
        // What the verifier refuses in a function must not pass inlined,
        // where the caller's code would follow it.
        let last = slots(prog, range.clone()).last().unwrap_or(range.start);
        let ends = prog[last];
        if !(ends.code == op::JMP | op::EXIT
            || ends.code == op::JMP | op::JA
            || ends.code == op::JMP32 | op::JA)
        {
            return Err(refuse("the filter does not end in exit or a jump".into()));
        }
        if let Some(i) = unreachable(prog, range.clone()) {
            return Err(refuse(format!(
                "instruction {} of the filter is unreachable",
                i - range.start
            )));
        }
        let unused_scratch = if calls {
            Vec::new()
        } else {
            (R1..=R5).filter(|&r| uses & bit(r) == 0).collect()
        };
        Ok(Body {
            frame: frame_depth(prog, range.clone(), Indexed::NonNegative)?,
            range,
            writes: writes_mask,
            unused_scratch,
        })
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// The largest frame of the functions whose address the body takes
    /// (they call nothing themselves: the translator's loop callbacks).
    pub fn callback_frame(&self, prog: &[Insn], starts: &[usize]) -> Result<i64, Error> {
        let mut frame = 0;
        for i in slots(prog, self.range.clone()) {
            let x = prog[i];
            if x.code != LD_IMM64 || x.src != PSEUDO_FUNC {
                continue;
            }
            let t = target(prog, i).expect("checked in analyse");
            let k = starts.partition_point(|&s| s <= t);
            let end = starts.get(k).copied().unwrap_or(prog.len());
            frame = frame.max(frame_depth(prog, t..end, Indexed::NonNegative)?.max(1));
        }
        Ok(frame)
    }

    /// Appends the body for one call site to `out`; function addresses go
    /// to `fixups` as (slot in `out`, function's old slot).
    pub fn emit(
        &self,
        prog: &[Insn],
        site: &Site,
        out: &mut Vec<Insn>,
        fixups: &mut Vec<(usize, usize)>,
    ) -> Result<(), Error> {
        let slot = |k: usize| -> Result<i16, Error> {
            i16::try_from(-(site.caller + 8 * (k as i64 + 1)))
                .map_err(|_| refuse("stack offset out of range".into()))
        };
        for (k, &r) in site.saved.iter().enumerate() {
            out.push(Insn::stx(op::DW, R10, r, slot(k)?));
        }
        let start = self.range.start;
        let mut new_pos = vec![0usize; self.range.len() + 1];
        let mut jumps: Vec<(usize, usize)> = Vec::new(); // (out slot, body slot)
        let mut exits: Vec<usize> = Vec::new();
        for i in slots(prog, self.range.clone()) {
            let x = prog[i];
            new_pos[i - start] = out.len();
            let o = x.code & 0xf0;
            let jump = matches!(x.class(), op::JMP | op::JMP32);
            if jump && o == op::EXIT {
                // The last one falls through to what follows the body.
                if i + 1 != self.range.end {
                    exits.push(out.len());
                    out.push(Insn::ja(0));
                }
                continue;
            }
            if jump && o != op::CALL {
                jumps.push((out.len(), target(prog, i).unwrap() - start));
            }
            if x.code == LD_IMM64 && x.src == PSEUDO_FUNC {
                fixups.push((out.len(), target(prog, i).unwrap()));
            }
            let mut y = x;
            let rename = |r: u8| {
                site.renamed
                    .iter()
                    .find(|&&(from, _)| from == r)
                    .map_or(r, |&(_, to)| to)
            };
            y.dst = rename(x.dst);
            // An ld_imm64's src says what its constant is, not a register
            // (the body has no calls, whose src is the call's kind).
            if x.code != LD_IMM64 {
                y.src = rename(x.src);
            }
            match x.class() {
                op::LDX if x.src == R10 => y.off = shifted(x.off, site.shift)?,
                op::ST | op::STX if x.dst == R10 => y.off = shifted(x.off, site.shift)?,
                _ => {}
            }
            out.push(y);
            if x.code == LD_IMM64 {
                new_pos[i + 1 - start] = out.len();
                out.push(prog[i + 1]);
            }
            if x.code == op::ALU64 | op::MOV | op::X && x.src == R10 {
                out.push(Insn::alu64_imm(op::ADD, x.dst, -(site.shift as i32)));
            }
        }
        let end = out.len();
        new_pos[self.range.len()] = end;
        for (at, t) in jumps {
            retarget(&mut out[at], new_pos[t] as i64 - at as i64 - 1)?;
        }
        for at in exits {
            retarget(&mut out[at], end as i64 - at as i64 - 1)?;
        }
        for (k, &r) in site.saved.iter().enumerate() {
            out.push(Insn::ldx(op::DW, r, R10, slot(k)?));
        }
        Ok(())
    }
}

fn shifted(off: i16, by: i64) -> Result<i16, Error> {
    i16::try_from(i64::from(off) - by).map_err(|_| refuse("stack offset out of range".into()))
}
