//! Step 3: the code sections' new bytes, and everything in them that
//! follows the moved code: calls and function addresses, jumps (checked),
//! the callbacks' places, relocations; DWARF, which would describe the old
//! code, emptied.

use std::collections::{BTreeMap, HashMap};

use super::code::{Code, RefKind};
use super::stubs::Plan;
use super::{insn_at, shift, INSN, LD_IMM64, PSEUDO_FUNC};
use crate::elf::{self, Elf, Rel, R_BPF_64_64};
use crate::Error;

/// Each section's bytes, the edited ones with their stub bodies replaced.
pub(super) fn section_contents(obj: &Elf<'_>, plan: &Plan) -> Result<Vec<Vec<u8>>, Error> {
    let secs = &obj.sections;
    let mut contents: Vec<Vec<u8>> = secs.iter().map(|s| s.data.to_vec()).collect();
    for (&si, es) in &plan.edits {
        let old = secs[si].data;
        let mut new = Vec::with_capacity(old.len() + es.iter().map(|e| e.new.len()).sum::<usize>());
        let mut pos = 0usize;
        for e in es {
            new.extend_from_slice(&old[pos..e.start as usize]);
            new.extend_from_slice(&e.new);
            pos = e.end as usize;
        }
        new.extend_from_slice(&old[pos..]);
        if new.len() > u32::MAX as usize {
            return Err(Error::BadFilter {
                stub: plan.stubs[0].1.name.clone(),
                detail: "section larger than 4 GiB".into(),
            });
        }
        contents[si] = new;
    }
    Ok(contents)
}

/// Calls and function addresses into or across an edited section get
/// their new distance.
pub(super) fn follow_moved_code(
    obj: &Elf<'_>,
    code: &Code,
    plan: &Plan,
    contents: &mut [Vec<u8>],
) -> Result<(), Error> {
    let (secs, syms) = (&obj.sections, &obj.symbols);
    if plan.edits.is_empty() {
        return Ok(());
    }
    for r in &code.refs {
        let (es_here, (t, target)) = (plan.edits_of(r.section), r.target);
        if es_here.is_empty() && plan.edits_of(t).is_empty() {
            continue;
        }
        let Some(new_off) = shift(es_here, r.off) else {
            continue; // inside a replaced body
        };
        let rel_err = |detail: &str| Error::Relocation {
            section: secs[r.section].name.clone(),
            offset: r.off,
            detail: detail.into(),
        };
        let new_target = shift(plan.edits_of(t), target)
            .ok_or_else(|| rel_err("refers to the middle of a filter stub"))?
            as i64;
        let base = match r.sym {
            Some(sym) => shift(plan.edits_of(t), syms[sym].value).unwrap_or(syms[sym].value) as i64,
            None => new_off as i64,
        };
        let imm = match (r.kind, r.sym) {
            (RefKind::Call, _) => (new_target - base) / INSN as i64 - 1,
            (RefKind::FuncAddr, Some(sym)) if !syms[sym].is_func() => new_target - base,
            (RefKind::FuncAddr, _) => continue,
        };
        let imm =
            i32::try_from(imm).map_err(|_| rel_err("call distance does not fit in 32 bits"))?;
        set_imm(&mut contents[r.section], new_off, imm);
    }
    Ok(())
}

fn set_imm(data: &mut [u8], off: u64, imm: i32) {
    let o = off as usize + 4;
    data[o..o + 4].copy_from_slice(&imm.to_le_bytes());
}

/// Jumps may not cross a replaced body (they never do in compiled code:
/// they stay inside their function).
pub(super) fn check_jumps(obj: &Elf<'_>, plan: &Plan) -> Result<(), Error> {
    let secs = &obj.sections;
    for (&si, es) in &plan.edits {
        let data = secs[si].data;
        let mut off = 0;
        while off < data.len() as u64 {
            let x = insn_at(data, off);
            let step = if x.code == LD_IMM64 { 2 * INSN } else { INSN };
            let class = x.code & 7;
            let op = x.code & 0xf0;
            if (class == 5 || class == 6) && op != 0x80 && op != 0x90 && shift(es, off).is_some() {
                let delta = if x.code == 0x06 {
                    i64::from(x.imm)
                } else {
                    i64::from(x.off)
                };
                let target = off as i64 + (delta + 1) * INSN as i64;
                let moved = (target >= 0)
                    .then(|| shift(es, target as u64))
                    .flatten()
                    .map(|t| t as i64 - shift(es, off).unwrap() as i64 == target - off as i64);
                if moved != Some(true) {
                    return Err(Error::Unsupported(format!(
                        "the jump at offset {off:#x} in section `{}` crosses a filter stub",
                        secs[si].name
                    )));
                }
            }
            off += step;
        }
    }
    Ok(())
}

/// Where the callbacks went, and the relocations their addresses take.
pub(super) struct PlacedCallbacks {
    /// Callback symbol -> (value, size) in its section.
    pub symbols: HashMap<usize, (u64, u64)>,
    /// Stub symbol -> the size of its filter's first function.
    pub stub_sizes: HashMap<usize, u64>,
    /// Section -> relocations of `ld_imm64` of a callback's address.
    pub relocations: BTreeMap<usize, Vec<Rel>>,
}

/// Callbacks: where they went, and a relocation for each address taken.
pub(super) fn place_callbacks(code: &Code, plan: &Plan) -> PlacedCallbacks {
    let mut placed = PlacedCallbacks {
        symbols: HashMap::new(),
        stub_sizes: HashMap::new(),
        relocations: BTreeMap::new(),
    };
    for cb in &plan.callbacks {
        let func = &code.funcs[cb.func];
        let start =
            shift(plan.edits_of(func.section), func.start).expect("a body starts outside others");
        placed
            .stub_sizes
            .insert(func.sym, cb.starts[0] as u64 * INSN);
        for (k, &at) in cb.starts.iter().enumerate() {
            let end = cb.starts.get(k + 1).copied().unwrap_or(cb.insns.len());
            let place = (start + at as u64 * INSN, (end - at) as u64 * INSN);
            placed.symbols.insert(cb.symbols[k], place);
        }
        for (i, x) in cb.insns.iter().enumerate() {
            if x.code == LD_IMM64 && x.src == PSEUDO_FUNC {
                let target = (i as i64 + 1 + i64::from(x.imm)) as usize;
                let k = cb.starts.binary_search(&target).expect("checked");
                placed
                    .relocations
                    .entry(func.section)
                    .or_default()
                    .push(Rel {
                        offset: start + i as u64 * INSN,
                        sym: cb.symbols[k] as u32,
                        kind: R_BPF_64_64,
                    });
            }
        }
    }
    placed
}

/// Relocations of edited sections move with the code; a section that had
/// none and now takes a callback's address gets a relocation section
/// (returned, to be appended).
pub(super) fn relocations(
    obj: &Elf<'_>,
    plan: &Plan,
    placed: &PlacedCallbacks,
    contents: &mut [Vec<u8>],
) -> Result<Vec<elf::NewSection>, Error> {
    let mut extra_sections: Vec<elf::NewSection> = Vec::new();
    for (&si, es) in &plan.edits {
        let added = placed.relocations.get(&si).map_or(&[][..], |v| &v[..]);
        if let Some((ri, rs)) = obj.rels_for(si) {
            let mut out = Vec::with_capacity((rs.rels.len() + added.len()) * 16);
            for r in &rs.rels {
                if let Some(off) = shift(es, r.offset) {
                    out.extend_from_slice(&elf::rel_bytes(&Rel { offset: off, ..*r }));
                }
            }
            for r in added {
                out.extend_from_slice(&elf::rel_bytes(r));
            }
            contents[ri] = out;
        } else if !added.is_empty() {
            let st = obj.symtab.ok_or_else(|| {
                Error::Unsupported(
                    "an object without a symbol table cannot take a loop filter".into(),
                )
            })?;
            extra_sections.push(elf::NewSection::rel(
                &format!(".rel{}", obj.sections[si].name),
                st,
                si,
                added.iter().flat_map(elf::rel_bytes).collect(),
            ));
        }
    }
    Ok(extra_sections)
}

/// DWARF describes the old code (addresses, line tables, frames) and
/// nothing loads it: empty it rather than leave it wrong. BTF line_info
/// keeps the source lines for the kernel and bpftool.
pub(super) fn empty_dwarf(obj: &Elf<'_>, plan: &Plan, contents: &mut [Vec<u8>]) {
    if plan.edits.is_empty() {
        return;
    }
    let secs = &obj.sections;
    for (i, s) in secs.iter().enumerate() {
        let target = obj.rel_sections[i].as_ref().map(|r| &secs[r.target]);
        if s.name.starts_with(".debug_") || target.is_some_and(|t| t.name.starts_with(".debug_")) {
            contents[i].clear();
        }
    }
}
