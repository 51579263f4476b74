//! Pass 7: resolve labels into jump offsets.
//!
//! eBPF jump offsets are 16 bits. A jump that does not fit goes one of two
//! ways, by [`crate::Options::gotol`]:
//!
//! - `gotol` (32-bit offset, Linux 6.6 and 6.1.72+): a conditional jump
//!   becomes "if cond skip one; skip the gotol; gotol target". Jumps are
//!   widened one at a time until every offset fits.
//! - jump islands (the `islands` module), for every kernel: the jump goes to a
//!   nearby `ja` that continues toward the target, as many hops as needed.
//!
//! Either way, a program whose jumps all fit comes out the same.

mod islands;

use crate::ebpf::{op, Insn};
use crate::Error;

/// A jump target inside the function being laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(pub u32);

/// Lowered code before layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Insn(Insn),
    /// A jump (`ja` or conditional) whose offset is filled in here.
    Jump(Insn, Label),
    /// Binds a label to the next instruction.
    Bind(Label),
}

/// Lays out `items`; far jumps become `gotol` when `gotol` is set, else
/// they go through jump islands.
pub fn run(items: Vec<Item>, gotol: bool) -> Result<Vec<Insn>, Error> {
    let labels = label_count(&items);
    if gotol {
        wide(&items, labels)
    } else {
        islands::run(&items, labels)
    }
}

/// One more than the highest label bound in `items`.
fn label_count(items: &[Item]) -> usize {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Bind(l) => Some(l.0 as usize + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The `gotol` layout.
fn wide(items: &[Item], labels: usize) -> Result<Vec<Insn>, Error> {
    let mut wide = vec![false; items.len()];
    loop {
        // Positions with the current choice of widths.
        let mut pos = vec![usize::MAX; labels];
        let mut at = Vec::with_capacity(items.len());
        let mut pc = 0usize;
        for (n, item) in items.iter().enumerate() {
            at.push(pc);
            match item {
                // An ld_imm64 arrives as two items, one per slot.
                Item::Insn(_) => pc += 1,
                Item::Jump(i, _) => pc += width(i, wide[n]),
                Item::Bind(l) => pos[l.0 as usize] = pc,
            }
        }
        // Widen the jumps that do not fit, then lay out again.
        let mut changed = false;
        for (n, item) in items.iter().enumerate() {
            if let Item::Jump(_, l) = item {
                if !wide[n] && !fits(at[n], pos[l.0 as usize]) {
                    wide[n] = true;
                    changed = true;
                }
            }
        }
        if changed {
            continue;
        }
        let mut out = Vec::with_capacity(pc);
        for (n, item) in items.iter().enumerate() {
            match *item {
                Item::Insn(i) => out.push(i),
                Item::Bind(_) => {}
                Item::Jump(i, l) => {
                    let target = pos[l.0 as usize];
                    if target == usize::MAX {
                        return Err(Error::Internal("jump to an unbound label"));
                    }
                    emit_jump(&mut out, i, target, wide[n]);
                }
            }
        }
        return Ok(out);
    }
}

/// Whether a jump at `from` reaches `to` with a 16-bit offset.
fn fits(from: usize, to: usize) -> bool {
    i16::try_from(to as i64 - (from as i64 + 1)).is_ok()
}

fn is_ja(i: &Insn) -> bool {
    i.code == op::JMP | op::JA
}

fn width(i: &Insn, wide: bool) -> usize {
    match (wide, is_ja(i)) {
        (false, _) | (true, true) => 1,
        (true, false) => 3,
    }
}

fn emit_jump(out: &mut Vec<Insn>, mut i: Insn, target: usize, wide: bool) {
    let here = out.len();
    if !wide {
        i.off = (target as i64 - (here as i64 + 1)) as i16;
        out.push(i);
    } else if is_ja(&i) {
        out.push(Insn::ja32((target as i64 - (here as i64 + 1)) as i32));
    } else {
        i.off = 1;
        out.push(i);
        out.push(Insn::ja(1));
        out.push(Insn::ja32((target as i64 - (here as i64 + 3)) as i32));
    }
}
