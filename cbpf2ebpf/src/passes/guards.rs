//! Pass 4: place bounds checks.
//!
//! A load past the captured bytes makes the filter return 0, so a check may
//! move earlier as long as every path from its new place either performs a
//! load at least as far or returns 0 anyway: failing early gives the same
//! answer. For constant offsets (`P[k]`, `4*(P[k]&0xf)`) each block gets
//! the longest such *guaranteed* length, computed backwards over the DAG,
//! and a check is emitted only where a block loads past what every path to
//! it has already checked. Indexed loads (`P[X+k]`) share one check per run
//! of loads with the same `X` inside a block.

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
    /// Covered by the check of an earlier load in the same run.
    Covered,
}

impl Guards {
    /// How many checks the code will contain.
    pub fn count(&self) -> usize {
        let entry = self.block_entry.values().filter(|v| v.is_some()).count();
        let indexed = self.indexed.values().filter(|g| matches!(g, IndexedGuard::Check { .. })).count();
        entry + indexed
    }
}

/// "Any length": the block returns 0 on every path, so any check is sound.
const ANY: u64 = u64::MAX;

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
    let own = |b: Block| func.block_insts(b).filter_map(constant_end).max().unwrap_or(0);

    // Backwards: the length every path from the block's entry will load
    // (`guaranteed`) and the longest any path may load (`reach`, which caps
    // checks on blocks that only ever return 0).
    let mut guaranteed: SecondaryMap<Block, u64> = SecondaryMap::new();
    let mut reach: SecondaryMap<Block, u64> = SecondaryMap::new();
    for &b in func.layout.iter().rev() {
        let term = &func.blocks[b].term;
        let after = match *term {
            Terminator::ReturnK(0) => ANY,
            Terminator::ReturnK(_) | Terminator::ReturnA => 0,
            Terminator::Jump(t) => guaranteed[t],
            Terminator::Branch { then, otherwise, .. } => guaranteed[then].min(guaranteed[otherwise]),
        };
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

fn place_indexed_checks(func: &Function, guards: &mut Guards) {
    for &b in &func.layout {
        let insts = &func.blocks[b].insts;
        let mut run_start: Option<usize> = None;
        let mut run_end = 0u64;
        let close = |guards: &mut Guards, start: Option<usize>, max_end: u64| {
            if let Some(s) = start {
                guards.indexed[insts[s]] = IndexedGuard::Check { max_end };
            }
        };
        for (n, &i) in insts.iter().enumerate() {
            match func.insts[i] {
                InstData::LoadInd { size, k } => {
                    let end = k as u64 + size.bytes() as u64;
                    if run_start.is_none() {
                        run_start = Some(n);
                        run_end = end;
                    } else {
                        run_end = run_end.max(end);
                        guards.indexed[i] = IndexedGuard::Covered;
                    }
                }
                // X changes, or a helper call clobbers the run's registers.
                InstData::LoadMsh { .. }
                | InstData::LoadLen { dst: Reg::X }
                | InstData::LoadImm { dst: Reg::X, .. }
                | InstData::LoadMem { dst: Reg::X, .. }
                | InstData::Tax
                | InstData::LoadAncillary { .. } => {
                    close(guards, run_start.take(), run_end);
                }
                _ => {}
            }
        }
        close(guards, run_start, run_end);
    }
}
