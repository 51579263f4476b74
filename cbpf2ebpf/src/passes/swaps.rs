//! Pass 5: keep loaded halfwords and words in wire byte order where that
//! is unobservable.
//!
//! Packets are big-endian, so a load normally needs a byte swap. But when a
//! loaded value is only ever tested with `jeq #k` or `jset #k` before A
//! changes, swapping the constant at translation time gives the same
//! answer, and the swap instruction disappears from the packet path. The
//! analysis follows reaching definitions of A over the DAG: every branch
//! that tests a swapped value must see only swapped loads of one width.

use cranelift_entity::SecondaryMap;

use crate::cbpf::ancillary;
use crate::ir::{Block, Cond, Function, Inst, InstData, Operand, Size, Terminator};

/// Reaching definitions beyond this many are not tracked (the value is
/// then used as is).
const MAX_TRACKED_DEFS: usize = 16;

/// Which loads stay unswapped, and which branches compare swapped values.
#[derive(Clone, Debug, Default)]
pub struct Swaps {
    /// Loads whose value stays in wire order.
    pub raw_loads: SecondaryMap<Inst, bool>,
    /// Branches whose constant is swapped, with the loaded width.
    pub raw_branches: SecondaryMap<Block, Option<Size>>,
}

/// A definition of A reaching a point: a load, or anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Def {
    /// Not a candidate (initial zero, arithmetic, byte loads, ...).
    Other,
    Load(Inst),
}

fn is_candidate(inst: &InstData) -> bool {
    matches!(
        inst,
        InstData::LoadAbs {
            size: Size::H | Size::W,
            ..
        } | InstData::LoadInd {
            size: Size::H | Size::W,
            ..
        }
    )
}

fn load_size(inst: &InstData) -> Option<Size> {
    match *inst {
        InstData::LoadAbs { size, .. } | InstData::LoadInd { size, .. } => Some(size),
        _ => None,
    }
}

fn reads_a(inst: &InstData) -> bool {
    match inst {
        InstData::Alu { .. } | InstData::Neg | InstData::Tax => true,
        InstData::Store { src, .. } => *src == crate::ir::Reg::A,
        InstData::LoadAncillary { ad } => *ad == ancillary::ALU_XOR_X,
        _ => false,
    }
}

fn writes_a(inst: &InstData) -> bool {
    use crate::ir::Reg;
    match inst {
        InstData::LoadAbs { .. } | InstData::LoadInd { .. } | InstData::LoadAncillary { .. } => {
            true
        }
        InstData::Alu { .. } | InstData::Neg | InstData::Txa => true,
        InstData::LoadLen { dst }
        | InstData::LoadImm { dst, .. }
        | InstData::LoadMem { dst, .. } => *dst == Reg::A,
        _ => false,
    }
}

pub fn run(func: &Function) -> Swaps {
    let mut poisoned: SecondaryMap<Inst, bool> = SecondaryMap::new();
    // Poisoning only grows; repeat until a pass poisons nothing new.
    loop {
        let mut changed = false;
        let mut poison = |defs: &[Def], poisoned: &mut SecondaryMap<Inst, bool>| {
            for d in defs {
                if let Def::Load(i) = *d {
                    if !poisoned[i] {
                        poisoned[i] = true;
                        changed = true;
                    }
                }
            }
        };
        let snapshot = poisoned.clone();
        walk(func, |use_site, defs| match use_site {
            UseSite::Compatible(_) if compatible(func, defs, &snapshot) => {}
            _ => poison(defs, &mut poisoned),
        });
        if !changed {
            break;
        }
    }

    let mut swaps = Swaps::default();
    for &b in &func.layout {
        for &i in &func.blocks[b].insts {
            if is_candidate(&func.insts[i]) && !poisoned[i] {
                swaps.raw_loads[i] = true;
            }
        }
    }
    walk(func, |use_site, defs| {
        if let UseSite::Compatible(b) = use_site {
            if compatible(func, defs, &poisoned) {
                if let Some(Def::Load(i)) = defs.first() {
                    swaps.raw_branches[b] = load_size(&func.insts[*i]);
                }
            }
        }
    });
    swaps
}

/// All reaching definitions are unpoisoned candidate loads of one width.
fn compatible(func: &Function, defs: &[Def], poisoned: &SecondaryMap<Inst, bool>) -> bool {
    let mut width = None;
    for d in defs {
        match *d {
            Def::Other => return false,
            Def::Load(i) => {
                if poisoned[i] || !is_candidate(&func.insts[i]) {
                    return false;
                }
                let w = load_size(&func.insts[i]);
                if width.is_some() && width != w {
                    return false;
                }
                width = w;
            }
        }
    }
    !defs.is_empty()
}

enum UseSite {
    /// A `jeq #k` / `jset #k` branch ending this block.
    Compatible(Block),
    /// Any other read of A.
    Other,
}

/// Calls `on_use` for every read of A with the definitions reaching it.
fn walk(func: &Function, mut on_use: impl FnMut(UseSite, &[Def])) {
    let mut reaching: SecondaryMap<Block, Option<Vec<Def>>> = SecondaryMap::new();
    reaching[func.entry()] = Some(vec![Def::Other]);
    for &b in &func.layout {
        let mut defs = reaching[b].take().unwrap_or_else(|| vec![Def::Other]);
        for &i in &func.blocks[b].insts {
            let inst = &func.insts[i];
            if reads_a(inst) {
                on_use(UseSite::Other, &defs);
            }
            if writes_a(inst) {
                defs = vec![if is_candidate(inst) {
                    Def::Load(i)
                } else {
                    Def::Other
                }];
            }
        }
        match func.blocks[b].term {
            Terminator::Branch {
                cond: Cond::Eq | Cond::Set,
                operand: Operand::K(_),
                ..
            } => on_use(UseSite::Compatible(b), &defs),
            // Handing A to the loop callback: it must be in host order.
            Terminator::Branch { .. }
            | Terminator::ReturnA
            | Terminator::Enter(_)
            | Terminator::Continue(_) => on_use(UseSite::Other, &defs),
            _ => {}
        }
        for s in func.blocks[b].term.successors() {
            let merged = match reaching[s].take() {
                None => defs.clone(),
                Some(mut prev) => {
                    prev.extend_from_slice(&defs);
                    prev.sort();
                    prev.dedup();
                    prev
                }
            };
            // Too many to track: those loads keep their swap, and the
            // value counts as a plain one from here on.
            reaching[s] = Some(if merged.len() > MAX_TRACKED_DEFS {
                on_use(UseSite::Other, &merged);
                vec![Def::Other]
            } else {
                merged
            });
        }
    }
}
