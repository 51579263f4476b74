//! The object's BTF, read before the stubs are checked, and step 5:
//! `.BTF.ext` func_info, line_info and CO-RE records move with the code.
//! Records inside a replaced body are dropped; each stub keeps one
//! line_info record at its first instruction; each callback gets its
//! stub's records; `.rel.BTF.ext` is rewritten to match.

use std::collections::HashMap;

use super::code::Code;
use super::rewrite::PlacedCallbacks;
use super::shift;
use super::stubs::Plan;
use crate::elf::{self, Elf, Rel};
use crate::Error;
use btf::ext::{self, BtfExt, InfoKind};
use btf::Btf;

/// The parsed `.BTF`, and `.BTF.ext` with its section index.
pub(super) type ObjectBtf = (Option<Btf>, Option<(usize, BtfExt)>);

pub(super) fn read(obj: &Elf<'_>) -> Result<ObjectBtf, Error> {
    let btf = match obj.section_by_name(".BTF") {
        Some((_, s)) => {
            Some(Btf::parse(s.data.to_vec()).map_err(|e| Error::Malformed(format!(".BTF: {e}")))?)
        }
        None => None,
    };
    let ext = match (obj.section_by_name(".BTF.ext"), &btf) {
        (Some((i, s)), Some(b)) => Some((
            i,
            BtfExt::parse(s.data, b).map_err(|e| Error::Malformed(format!(".BTF.ext: {e}")))?,
        )),
        (Some(_), None) => return Err(Error::Malformed(".BTF.ext without .BTF".into())),
        _ => None,
    };
    Ok((btf, ext))
}

pub(super) fn rewrite(
    obj: &Elf<'_>,
    code: &Code,
    plan: &Plan,
    placed: &PlacedCallbacks,
    ext_idx: usize,
    ext: &mut BtfExt,
    contents: &mut [Vec<u8>],
) {
    if plan.edits.is_empty() {
        return;
    }
    let secs = &obj.sections;
    let by_name: HashMap<&str, usize> = plan
        .edits
        .keys()
        .rev()
        .map(|&si| (secs[si].name.as_str(), si))
        .collect();
    for kind in [InfoKind::Func, InfoKind::Line, InfoKind::CoreRelo] {
        let Some(set) = ext.set_mut(kind) else {
            continue;
        };
        for block in &mut set.blocks {
            let Some(&si) = by_name.get(block.name.as_str()) else {
                continue;
            };
            let mut kept = moved_records(kind, &plan.edits[&si], &mut block.records);
            // Each callback: the records its stub has, moved to it (its
            // func_info names the stub's BTF FUNC: static, and the kernel
            // checks no argument of a static callback).
            if kind != InfoKind::CoreRelo {
                copy_to_callbacks(obj, code, plan, placed, &block.name, &mut kept);
            }
            kept.sort_by_key(|r| r.insn_off());
            block.records = kept;
        }
    }
    let (bytes, moved) = ext.write();
    contents[ext_idx] = bytes;
    if let Some((ri, rs)) = obj.rels_for(ext_idx) {
        let by_pos: HashMap<u64, &Rel> = rs.rels.iter().map(|r| (r.offset, r)).collect();
        let mut out = Vec::new();
        for m in moved {
            let old = m.old.or(m.sibling).and_then(|p| by_pos.get(&(p as u64)));
            if let Some(r) = old {
                out.extend_from_slice(&elf::rel_bytes(&Rel {
                    offset: m.new as u64,
                    ..**r
                }));
            }
        }
        contents[ri] = out;
    }
}

/// A block's records outside the replaced bodies, at their new offsets;
/// for line_info, one record at each stub's first instruction.
fn moved_records(
    kind: InfoKind,
    es: &[super::Edit],
    records: &mut Vec<ext::Record>,
) -> Vec<ext::Record> {
    let mut first_inside: Vec<Option<ext::Record>> = vec![None; es.len()];
    let mut kept = Vec::with_capacity(records.len());
    for mut r in records.drain(..) {
        let off = u64::from(r.insn_off());
        if let Some(k) = es.iter().position(|e| e.start < off && off < e.end) {
            first_inside[k].get_or_insert(r);
            continue;
        }
        if kind == InfoKind::CoreRelo && es.iter().any(|e| e.start == off) {
            continue;
        }
        r.set_insn_off(shift(es, off).unwrap() as u32);
        kept.push(r);
    }
    if kind == InfoKind::Line && !kept.is_empty() {
        for (k, e) in es.iter().enumerate() {
            let start = shift(es, e.start).unwrap() as u32;
            if kept.iter().any(|r| r.insn_off() == start) {
                continue;
            }
            let template = first_inside[k]
                .clone()
                .or_else(|| kept.iter().rfind(|r| r.insn_off() < start).cloned())
                .unwrap_or_else(|| kept[0].clone());
            let mut r = ext::Record {
                old_pos: None,
                ..template
            };
            r.set_insn_off(start);
            kept.push(r);
        }
    }
    kept
}

/// Copies of the stub's record to each of its callbacks in the section
/// named `section`.
fn copy_to_callbacks(
    obj: &Elf<'_>,
    code: &Code,
    plan: &Plan,
    placed: &PlacedCallbacks,
    section: &str,
    kept: &mut Vec<ext::Record>,
) {
    for cb in plan
        .callbacks
        .iter()
        .filter(|cb| obj.sections[code.funcs[cb.func].section].name == section)
    {
        let func = &code.funcs[cb.func];
        let stub_at = shift(plan.edits_of(func.section), func.start).unwrap() as u32;
        let Some(template) = kept.iter().find(|r| r.insn_off() == stub_at).cloned() else {
            continue;
        };
        for sym in &cb.symbols {
            let mut r = ext::Record {
                old_pos: None,
                ..template.clone()
            };
            r.set_insn_off(placed.symbols[sym].0 as u32);
            kept.push(r);
        }
    }
}
