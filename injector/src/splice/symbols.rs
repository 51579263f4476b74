//! Step 4: the symbols of edited sections follow the code: stubs take
//! their filter's size, callbacks their place after the stub's body, an
//! earlier splice's callbacks left without a function become labels; new
//! callbacks are appended.

use super::code::Code;
use super::rewrite::PlacedCallbacks;
use super::stubs::Plan;
use super::{shift, Edit, INSN};
use crate::elf::{self, Elf, Symbol};
use crate::Error;

pub(super) fn rewrite(
    obj: &Elf<'_>,
    code: &Code,
    plan: &Plan,
    placed: &PlacedCallbacks,
    contents: &mut [Vec<u8>],
) -> Result<(), Error> {
    let Some(st) = obj.symtab.filter(|_| !plan.edits.is_empty()) else {
        return Ok(());
    };
    for (i, s) in obj.symbols.iter().enumerate() {
        let Some(es) = s.section.and_then(|sec| plan.edits.get(&sec)) else {
            continue;
        };
        let at = i * elf::SYM_SIZE;
        // A callback, placed after its stub's new body, or an earlier
        // splice's callback left without a function: a plain label.
        if let Some(&(value, size)) = placed.symbols.get(&i) {
            elf::set_symbol(&mut contents[st], at, value, size, None);
            continue;
        }
        if plan.rewritten.contains(&i) {
            let at_stub = es.iter().find(|e| e.start < s.value && s.value < e.end);
            let value = at_stub.and_then(|e| shift(es, e.start)).unwrap_or(0);
            elf::set_symbol(&mut contents[st], at, value, 0, Some(elf::STT_NOTYPE));
            continue;
        }
        let (value, size) = moved_symbol(code, plan, placed, i, s, es)?;
        elf::set_symbol(&mut contents[st], at, value, size, None);
    }
    append_new_callbacks(obj, st, plan, placed, contents);
    Ok(())
}

/// Where symbol `i` of a section with edits `es` lands, and its size.
fn moved_symbol(
    code: &Code,
    plan: &Plan,
    placed: &PlacedCallbacks,
    i: usize,
    s: &Symbol,
    es: &[Edit],
) -> Result<(u64, u64), Error> {
    let stub = plan.stubs.iter().find(|(f, _)| code.funcs[*f].sym == i);
    let value = match shift(es, s.value) {
        Some(v) => v,
        None if s.is_func() => {
            return Err(Error::Malformed(format!(
                "function `{}` lies inside a filter stub",
                s.name
            )))
        }
        None => shift(
            es,
            es.iter()
                .find(|e| e.start < s.value && s.value < e.end)
                .unwrap()
                .start,
        )
        .unwrap(),
    };
    let size = match stub {
        Some((_, r)) => placed
            .stub_sizes
            .get(&i)
            .copied()
            .unwrap_or(r.new_insns as u64 * INSN),
        None => s.size,
    };
    if stub.is_none()
        && s.is_func()
        && es
            .iter()
            .any(|e| s.value < e.start && s.value + s.size > e.start)
    {
        return Err(Error::Malformed(format!(
            "function `{}` overlaps a filter stub",
            s.name
        )));
    }
    Ok((value, size))
}

/// New callbacks: global (appended after the local symbols) and hidden,
/// which libbpf takes for static.
fn append_new_callbacks(
    obj: &Elf<'_>,
    st: usize,
    plan: &Plan,
    placed: &PlacedCallbacks,
    contents: &mut [Vec<u8>],
) {
    let strtab = obj.sections[st].hdr.sh_link.get(object::LittleEndian) as usize;
    for (n, (name, sec)) in plan.new_syms.iter().enumerate() {
        let (value, size) = placed.symbols[&(obj.symbols.len() + n)];
        let name_off = contents[strtab].len() as u32;
        contents[strtab].extend_from_slice(name.as_bytes());
        contents[strtab].push(0);
        contents[st].extend_from_slice(&elf::func_symbol(name_off, *sec, value, size));
    }
}
