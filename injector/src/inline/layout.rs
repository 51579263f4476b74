//! The new program: every slot at its new position, the body in place of
//! each call, the callee dropped, and every jump, call and function
//! address re-targeted.

use cbpf2ebpf::ebpf::Insn;

use super::body::{Body, Site};
use super::insn::{retarget, target, LD_IMM64};
use super::refuse;
use crate::Error;

pub(super) fn lay_out(
    prog: &[Insn],
    body: &Body,
    sites: &[(usize, Site)],
) -> Result<Vec<Insn>, Error> {
    let callee_range = &body.range;
    let mut out: Vec<Insn> = Vec::with_capacity(prog.len() + sites.len() * body.len());
    let mut new_pos = vec![usize::MAX; prog.len() + 1];
    let mut fixups: Vec<(usize, usize)> = Vec::new(); // (new slot, old target)
    let mut next_site = sites.iter().peekable();
    let mut i = 0;
    while i < prog.len() {
        if callee_range.contains(&i) {
            i = callee_range.end;
            continue;
        }
        new_pos[i] = out.len();
        if let Some((_, site)) = next_site.next_if(|(s, _)| *s == i) {
            body.emit(prog, site, &mut out, &mut fixups)?;
            i += 1;
            continue;
        }
        let x = prog[i];
        if let Some(t) = target(prog, i) {
            fixups.push((out.len(), t));
        }
        out.push(x);
        if x.code == LD_IMM64 {
            new_pos[i + 1] = out.len();
            out.push(prog[i + 1]);
            i += 2;
        } else {
            i += 1;
        }
    }
    new_pos[prog.len()] = out.len();
    for (at, t) in fixups {
        let to = new_pos[t];
        if to == usize::MAX {
            return Err(refuse(format!(
                "instruction {at} refers into the inlined function"
            )));
        }
        retarget(&mut out[at], to as i64 - at as i64 - 1)?;
    }
    Ok(out)
}
