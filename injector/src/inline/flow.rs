//! Data flow inside one function: which of r6-r9 are live or set where,
//! and what no path reaches.

use std::ops::Range;

use cbpf2ebpf::ebpf::{op, Insn};

use super::insn::{bit, reads, slots, target, writes, LD_IMM64};

/// For each slot of `range` (and the one after), which of r6-r9 are live
/// before it: read on some path before being written.
pub(super) fn live_callee_saved(prog: &[Insn], range: Range<usize>) -> Vec<u16> {
    const MASK: u16 = bit(6) | bit(7) | bit(8) | bit(9);
    let mut live = vec![0u16; prog.len() + 1];
    let at: Vec<usize> = slots(prog, range.clone()).collect();
    loop {
        let mut changed = false;
        for &i in at.iter().rev() {
            let x = prog[i];
            let next = i + if x.code == LD_IMM64 { 2 } else { 1 };
            let mut out = 0;
            let o = x.code & 0xf0;
            let jump = matches!(x.class(), op::JMP | op::JMP32);
            let falls = !(jump && (o == op::EXIT || o == op::JA));
            if falls && next < range.end {
                out |= live[next];
            }
            if jump && !matches!(o, op::CALL | op::EXIT) {
                if let Some(t) = target(prog, i).filter(|t| range.contains(t)) {
                    out |= live[t];
                }
            }
            let new = (reads(x) | (out & !writes(x))) & MASK;
            if new != live[i] {
                live[i] = new;
                changed = true;
            }
        }
        if !changed {
            return live;
        }
    }
}

/// For each slot of `range`, which of r6-r9 are set on every path from
/// the function's entry to it.
pub(super) fn defined_callee_saved(prog: &[Insn], range: Range<usize>) -> Vec<u16> {
    const MASK: u16 = bit(6) | bit(7) | bit(8) | bit(9);
    let mut defined = vec![MASK; prog.len() + 1];
    defined[range.start] = 0;
    let at: Vec<usize> = slots(prog, range.clone()).collect();
    loop {
        let mut changed = false;
        for &i in &at {
            let x = prog[i];
            let out = (defined[i] | writes(x)) & MASK;
            let next = i + if x.code == LD_IMM64 { 2 } else { 1 };
            let o = x.code & 0xf0;
            let jump = matches!(x.class(), op::JMP | op::JMP32);
            let mut succ = Vec::with_capacity(2);
            if !(jump && (o == op::EXIT || o == op::JA)) && next < range.end {
                succ.push(next);
            }
            if jump && !matches!(o, op::CALL | op::EXIT) {
                succ.extend(target(prog, i).filter(|t| range.contains(t)));
            }
            for t in succ {
                let new = defined[t] & out;
                if t != range.start && new != defined[t] {
                    defined[t] = new;
                    changed = true;
                }
            }
        }
        if !changed {
            return defined;
        }
    }
}

/// The first instruction of `range` no path from its start reaches.
pub(super) fn unreachable(prog: &[Insn], range: Range<usize>) -> Option<usize> {
    let mut seen = vec![false; prog.len()];
    let mut todo = vec![range.start];
    while let Some(i) = todo.pop() {
        if !range.contains(&i) || std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let x = prog[i];
        let o = x.code & 0xf0;
        let jump = matches!(x.class(), op::JMP | op::JMP32);
        if !(jump && (o == op::EXIT || o == op::JA)) {
            todo.push(i + if x.code == LD_IMM64 { 2 } else { 1 });
        }
        if jump && !matches!(o, op::CALL | op::EXIT) {
            todo.extend(target(prog, i));
        }
    }
    slots(prog, range).find(|&i| !seen[i])
}
