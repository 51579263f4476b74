//! Pass 4: place bounds checks.
//!
//! A load past the captured bytes makes the filter return 0, so a check may
//! move earlier as long as every path from its new place either performs a
//! load at least as far or returns 0 anyway: failing early gives the same
//! answer. For constant offsets (`P[k]`, `4*(P[k]&0xf)`) each block gets
//! the longest such *guaranteed* length, computed backwards over the DAG,
//! and a check is emitted only where a block loads past what every path to
//! it has already checked. Indexed loads (`P[X+k]`) are handled the same
//! way per value of `X`: one check where a run of loads with that `X`
//! starts covers every load that all paths from there perform.

use cranelift_entity::SecondaryMap;

use crate::ir::{Block, Function, Inst, InstData, Reg, Terminator};
use crate::Options;

/// Where the checks go.
#[derive(Clone, Debug, Default)]
pub struct Guards {
    /// `Some(n)`: check at the start of the block that `n` bytes were
    /// captured (every constant-offset load in the block is within `n`).
    pub block_entry: SecondaryMap<Block, Option<u64>>,
    /// Checks for indexed loads.
    pub indexed: SecondaryMap<Inst, IndexedGuard>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IndexedGuard {
    /// Not an indexed load.
    #[default]
    None,
    /// First indexed load of a run: check `X + max_end <= captured length`.
    Check { max_end: u64 },
    /// A run whose `start + X` is already bounded and checked for fewer
    /// bytes: check `X + max_end` again, reusing it.
    Extend { max_end: u64 },
    /// Covered by the check of an earlier load in the same run.
    Covered,
}

impl Guards {
    /// How many checks the code will contain.
    pub fn count(&self) -> usize {
        let entry = self.block_entry.values().filter(|v| v.is_some()).count();
        let indexed = self
            .indexed
            .values()
            .filter(|g| matches!(g, IndexedGuard::Check { .. } | IndexedGuard::Extend { .. }))
            .count();
        entry + indexed
    }
}

/// How much further than the length `X` was bounded for a later check may
/// reach and still reuse `start + X`: the verifier tracks packet offsets up
/// to 0xffff, `X` was bounded to `MAX_DIRECT_OFFSET - len`, and the caller's
/// `start` may be up to [`crate::MAX_START_OFFSET`] past its packet pointer.
const EXTENSION_SLACK: u64 = 0xffff - super::simplify::MAX_DIRECT_OFFSET - crate::MAX_START_OFFSET;

/// "Any length": the block returns 0 on every path, so any check is sound.
const ANY: u64 = u64::MAX;

/// What every path past `term` guarantees, given its successors' values:
/// a `return 0` guarantees anything, another return nothing.
/// Leaving for the loop callback, or for its next pass, guarantees
/// nothing either (the loop may load anything, or nothing, first).
fn guaranteed_after(term: &Terminator, guaranteed: &SecondaryMap<Block, u64>) -> u64 {
    match *term {
        Terminator::ReturnK(0) => ANY,
        Terminator::ReturnK(_) | Terminator::ReturnA => 0,
        Terminator::Enter(_) | Terminator::Continue(_) => 0,
        Terminator::Jump(t) => guaranteed[t],
        Terminator::Branch {
            then, otherwise, ..
        }
        | Terminator::Resume {
            then, otherwise, ..
        } => guaranteed[then].min(guaranteed[otherwise]),
    }
}

/// The end (offset + size) of a constant-offset load.
fn constant_end(inst: &InstData) -> Option<u64> {
    match *inst {
        InstData::LoadAbs { size, k } => Some(k as u64 + size.bytes() as u64),
        InstData::LoadMsh { k } => Some(k as u64 + 1),
        _ => None,
    }
}

pub fn run(func: &Function, _opts: &Options) -> Guards {
    let mut guards = Guards::default();
    place_constant_checks(func, &mut guards);
    place_indexed_checks(func, &mut guards);
    guards
}

fn place_constant_checks(func: &Function, guards: &mut Guards) {
    let own = |b: Block| {
        func.block_insts(b)
            .filter_map(constant_end)
            .max()
            .unwrap_or(0)
    };

    // Backwards: the length every path from the block's entry will load
    // (`guaranteed`) and the longest any path may load (`reach`, which caps
    // checks on blocks that only ever return 0).
    let mut guaranteed: SecondaryMap<Block, u64> = SecondaryMap::new();
    let mut reach: SecondaryMap<Block, u64> = SecondaryMap::new();
    for &b in func.layout.iter().rev() {
        let term = &func.blocks[b].term;
        let after = guaranteed_after(term, &guaranteed);
        let mine = own(b);
        guaranteed[b] = mine.max(after);
        reach[b] = term.successors().map(|s| reach[s]).fold(mine, u64::max);
    }

    // Forwards: what every path into a block has checked already.
    let mut checked_in: SecondaryMap<Block, Option<u64>> = SecondaryMap::new();
    checked_in[func.entry()] = Some(0);
    for &b in &func.layout {
        let have = checked_in[b].unwrap_or(0);
        let mut out = have;
        if own(b) > have {
            let len = guaranteed[b].min(reach[b]);
            guards.block_entry[b] = Some(len);
            out = len;
        }
        for s in func.blocks[b].term.successors() {
            checked_in[s] = Some(match checked_in[s] {
                Some(c) => c.min(out),
                None => out,
            });
        }
    }
}

/// The end of an indexed load (`P[X + k]`).
fn indexed_end(inst: &InstData) -> Option<u64> {
    match *inst {
        InstData::LoadInd { size, k } => Some(k as u64 + size.bytes() as u64),
        _ => None,
    }
}

/// Whether `X` changes (or, for direct mode, a helper call clobbers the
/// register holding `start + X`): a check made before covers nothing after.
fn ends_indexed_run(inst: &InstData) -> bool {
    matches!(
        inst,
        InstData::LoadMsh { .. }
            | InstData::LoadLen { dst: Reg::X }
            | InstData::LoadImm { dst: Reg::X, .. }
            | InstData::LoadMem { dst: Reg::X, .. }
            | InstData::Tax
            | InstData::LoadAncillary { .. }
    )
}

/// Indexed loads get the same treatment as constant ones, per value of X:
/// the first load of a run checks the length every path will load with
/// that X (across blocks), and later loads within it need no check.
fn place_indexed_checks(func: &Function, guards: &mut Guards) {
    // From instruction `from` of a block: (guaranteed end, furthest end)
    // of indexed loads with the current X, given the successors' values.
    let scan = |b: Block,
                from: usize,
                guaranteed: &SecondaryMap<Block, u64>,
                reach: &SecondaryMap<Block, u64>|
     -> (u64, u64) {
        let mut own = 0;
        for &i in &func.blocks[b].insts[from..] {
            let inst = &func.insts[i];
            if ends_indexed_run(inst) {
                return (own, own);
            }
            if let Some(end) = indexed_end(inst) {
                own = own.max(end);
            }
        }
        let term = &func.blocks[b].term;
        let after = guaranteed_after(term, guaranteed);
        let furthest = term.successors().map(|s| reach[s]).fold(own, u64::max);
        (own.max(after), furthest)
    };

    let mut guaranteed: SecondaryMap<Block, u64> = SecondaryMap::new();
    let mut reach: SecondaryMap<Block, u64> = SecondaryMap::new();
    for &b in func.layout.iter().rev() {
        let (g, r) = scan(b, 0, &guaranteed, &reach);
        guaranteed[b] = g;
        reach[b] = r;
    }

    // Forwards, on every path: (length checked, length X was bounded for)
    // for the current X, if any.
    let mut checked_in: SecondaryMap<Block, Option<Option<(u64, u64)>>> = SecondaryMap::new();
    for &b in &func.layout {
        let mut checked = checked_in[b].flatten();
        for (n, &i) in func.blocks[b].insts.iter().enumerate() {
            let inst = &func.insts[i];
            if ends_indexed_run(inst) {
                checked = None;
            } else if let Some(end) = indexed_end(inst) {
                let (g, r) = scan(b, n, &guaranteed, &reach);
                let len = g.min(r);
                guards.indexed[i] = match checked {
                    Some((c, _)) if end <= c => IndexedGuard::Covered,
                    Some((_, bound)) if len <= bound + EXTENSION_SLACK => {
                        checked = Some((len, bound));
                        IndexedGuard::Extend { max_end: len }
                    }
                    _ => {
                        checked = Some((len, len));
                        IndexedGuard::Check { max_end: len }
                    }
                };
            }
        }
        for s in func.blocks[b].term.successors() {
            checked_in[s] = Some(match checked_in[s] {
                None => checked,
                Some(prev) => prev
                    .zip(checked)
                    .map(|((c1, b1), (c2, b2))| (c1.min(c2), b1.min(b2))),
            });
        }
    }
}
