//! Part of pass 6 (lower runs it first): find what must be zeroed on entry.
//!
//! libpcap starts with `A = X = 0`. The verifier rejects reads of
//! uninitialised registers and stack, but zeroing everything costs
//! instructions on every packet, so only what some path may read before
//! writing is initialised. Scratch words read before any write (libpcap's
//! own code never does this) read 0.

use cranelift_entity::SecondaryMap;

use crate::cbpf::ancillary;
use crate::ir::{Block, Function, InstData, Operand, Reg, Terminator};

/// Bit set over A (bit 0), X (bit 1) and `M[0..16]` (bits 2..18).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Values(pub u32);

impl Values {
    pub const A: u32 = 1;
    pub const X: u32 = 2;
    pub const ALL: u32 = (1 << 18) - 1;
    pub fn mem(slot: u32) -> u32 {
        1 << (2 + slot)
    }
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
    pub fn reg(r: Reg) -> u32 {
        match r {
            Reg::A => Self::A,
            Reg::X => Self::X,
        }
    }
}

/// What each instruction reads and writes, as [`Values`] bits.
fn uses_defs(inst: &InstData) -> (u32, u32) {
    let operand = |o: &Operand| if *o == Operand::X { Values::X } else { 0 };
    match inst {
        InstData::LoadAncillary {
            ad: ancillary::ALU_XOR_X,
        } => (Values::A | Values::X, Values::A),
        InstData::LoadAbs { .. } | InstData::LoadAncillary { .. } => (0, Values::A),
        InstData::LoadInd { .. } => (Values::X, Values::A),
        InstData::LoadMsh { .. } => (0, Values::X),
        InstData::LoadLen { dst } | InstData::LoadImm { dst, .. } => (0, Values::reg(*dst)),
        InstData::LoadMem { dst, slot } => (Values::mem(*slot), Values::reg(*dst)),
        InstData::Store { src, slot } => (Values::reg(*src), Values::mem(*slot)),
        InstData::Alu { operand: o, .. } => (Values::A | operand(o), Values::A),
        InstData::Neg => (Values::A, Values::A),
        InstData::Tax => (Values::A, Values::X),
        InstData::Txa => (Values::X, Values::A),
    }
}

/// The values some path reads before writing them, when the function
/// starts with `entry` defined (the loop callback loads what the loop
/// carries) and leaving for a loop pass ([`Terminator::Enter`],
/// [`Terminator::Continue`]) reads `carried`.
pub fn run(func: &Function, entry: u32, carried: u32) -> Values {
    // Forward over the DAG: a value is defined on entry to a block only if
    // every predecessor defines it.
    let mut defined_in: SecondaryMap<Block, Option<u32>> = SecondaryMap::new();
    defined_in[func.entry()] = Some(entry);
    let mut undefined_reads = 0u32;
    for &b in &func.layout {
        let mut defined = defined_in[b].unwrap_or(0);
        for inst in func.block_insts(b) {
            let (uses, defs) = uses_defs(inst);
            undefined_reads |= uses & !defined;
            defined |= defs;
        }
        let term_uses = match func.blocks[b].term {
            Terminator::Branch { operand, .. } => {
                Values::A | if operand == Operand::X { Values::X } else { 0 }
            }
            Terminator::ReturnA => Values::A,
            Terminator::Enter(_) | Terminator::Continue(_) => carried,
            _ => 0,
        };
        undefined_reads |= term_uses & !defined;
        for s in func.blocks[b].term.successors() {
            defined_in[s] = Some(defined_in[s].map_or(defined, |d| d & defined));
        }
    }
    Values(undefined_reads)
}
