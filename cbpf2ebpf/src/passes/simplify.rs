//! Pass 3: simplify the control flow before code generation.
//!
//! - Loads that can never succeed in this mode become `return 0`: direct
//!   packet access reaches at most 65280 bytes, and offline (libpcap's
//!   interpreter on a savefile) every ancillary load is out of bounds.
//! - A branch whose two targets agree becomes a jump; jumps through empty
//!   blocks go straight to where those lead.
//! - A block with a single predecessor that jumps to it is merged into it,
//!   so later passes see longer straight lines (more bounds checks merge).
//! - Unreachable blocks leave the layout: the verifier rejects dead code.

use cranelift_entity::SecondaryMap;

use crate::ir::{Block, Function, InstData, Terminator};
use crate::{Hook, Mode, Options};

/// How far past `start` direct access reaches. The verifier tracks packet
/// offsets up to 0xffff (`MAX_PACKET_OFF`) counted from the packet pointer
/// the *program* received: 64 bytes are left for the caller to have
/// advanced `start` ([`crate::MAX_START_OFFSET`]) and the rest lets
/// indexed checks extend (see `guards`).
pub const MAX_DIRECT_OFFSET: u64 = 0xff00;

pub fn run(func: &mut Function, opts: &Options) {
    cut_impossible_loads(func, opts);
    thread_jumps(func);
    merge_straight_lines(func);
    remove_unreachable(func);
}

/// Ends a block with `return 0` at its first load that can never succeed.
fn cut_impossible_loads(func: &mut Function, opts: &Options) {
    for &b in &func.layout {
        let cut = func.blocks[b]
            .insts
            .iter()
            .position(|&i| match func.insts[i] {
                InstData::LoadAbs { size, k } | InstData::LoadInd { size, k } => {
                    opts.mode == Mode::Direct && k as u64 + size.bytes() as u64 > MAX_DIRECT_OFFSET
                }
                InstData::LoadMsh { k } => {
                    opts.mode == Mode::Direct && k as u64 + 1 > MAX_DIRECT_OFFSET
                }
                InstData::LoadAncillary { .. } => opts.hook == Hook::Offline,
                _ => false,
            });
        if let Some(at) = cut {
            let data = &mut func.blocks[b];
            data.insts.truncate(at);
            data.term = Terminator::ReturnK(0);
        }
    }
}

/// Where control really goes when entering `b`: through empty jump blocks.
fn final_target(func: &Function, mut b: Block) -> Block {
    // Blocks only jump forward, so this terminates.
    while func.blocks[b].insts.is_empty() {
        match func.blocks[b].term {
            Terminator::Jump(t) => b = t,
            _ => break,
        }
    }
    b
}

fn thread_jumps(func: &mut Function) {
    for i in 0..func.layout.len() {
        let b = func.layout[i];
        let mut term = func.blocks[b].term;
        term.map_successors(|s| final_target(func, s));
        if let Terminator::Branch {
            then, otherwise, ..
        } = term
        {
            if then == otherwise {
                term = Terminator::Jump(then);
            }
        }
        // A jump to an empty return block is that return.
        if let Terminator::Jump(t) = term {
            if func.blocks[t].insts.is_empty()
                && matches!(
                    func.blocks[t].term,
                    Terminator::ReturnK(_) | Terminator::ReturnA
                )
            {
                term = func.blocks[t].term;
            }
        }
        func.blocks[b].term = term;
    }
}

fn merge_straight_lines(func: &mut Function) {
    remove_unreachable(func);
    let preds = func.predecessors();
    let mut merged_into: SecondaryMap<Block, bool> = SecondaryMap::new();
    // Walk in layout order; a block absorbs its sole-predecessor successors.
    for i in 0..func.layout.len() {
        let b = func.layout[i];
        if merged_into[b] {
            continue;
        }
        while let Terminator::Jump(t) = func.blocks[b].term {
            if preds[t].len() != 1 || t == b {
                break;
            }
            let tail = func.blocks[t].clone();
            let data = &mut func.blocks[b];
            data.insts.extend(tail.insts);
            data.term = tail.term;
            merged_into[t] = true;
        }
    }
    func.layout.retain(|b| !merged_into[*b]);
}

fn remove_unreachable(func: &mut Function) {
    let mut reachable: SecondaryMap<Block, bool> = SecondaryMap::new();
    reachable[func.layout[0]] = true;
    for i in 0..func.layout.len() {
        let b = func.layout[i];
        if reachable[b] {
            for s in func.blocks[b].term.successors() {
                reachable[s] = true;
            }
        }
    }
    func.layout.retain(|b| reachable[*b]);
}
