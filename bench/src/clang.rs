//! The hand-written C baselines (bench/c): compiled by clang for BPF and
//! read back as instructions, one function each.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cbpf2ebpf::ebpf::Insn;
use object::{Object, ObjectSection, ObjectSymbol};

/// Compiles `src` (bench/c/filters.c or programs.c) and returns each
/// function's instructions.
pub fn c_filters(src: &Path) -> Result<HashMap<String, Vec<Insn>>> {
    let obj = std::env::temp_dir().join(format!("xcap-bench-{}.o", std::process::id()));
    let st = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-mcpu=v3", "-c"])
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .status()
        .context("running clang")?;
    if !st.success() {
        bail!("clang failed on {}", src.display());
    }
    let bytes = std::fs::read(&obj)?;
    let _ = std::fs::remove_file(&obj);
    let file = object::File::parse(&*bytes)?;
    let text = file.section_by_name(".text").context("no .text")?;
    if text.relocations().next().is_some() {
        bail!("the C filters need relocations; they must be self-contained");
    }
    let data = text.data()?;
    let mut out = HashMap::new();
    for sym in file.symbols() {
        if sym.section_index() == Some(text.index())
            && sym.kind() == object::SymbolKind::Text
            && sym.size() > 0
        {
            let (a, n) = (sym.address() as usize, sym.size() as usize);
            out.insert(
                sym.name()?.to_string(),
                cbpf2ebpf::ebpf::from_bytes(&data[a..a + n]),
            );
        }
    }
    Ok(out)
}
