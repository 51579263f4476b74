//! `xcap compile EXPRESSION... -o F.o`: the filter as an ELF object for
//! other programs and loaders (`injector::blob`): a function to link with
//! `bpftool gen object`, or a complete XDP or TC program that passes the
//! matching packets and drops the others.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cbpf2ebpf::Hook;
use injector::blob::{compile_filter, BlobError};

use crate::plan::WriteObject;

pub fn write(plan: &WriteObject) -> Result<ExitCode> {
    let elf = object(plan)?;
    if plan.output == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(&elf)?;
        out.flush()?;
    } else {
        std::fs::write(&plan.output, &elf)
            .map_err(crate::out::IoError)
            .with_context(|| format!("can't write {}", plan.output))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The object's bytes.
fn object(plan: &WriteObject) -> Result<Vec<u8>> {
    let blob = match compile_filter(&plan.expression, &plan.options) {
        Err(BlobError::Translate(cbpf2ebpf::Error::Ancillary { primitive, .. }))
            if plan.options.hook == Hook::None =>
        {
            bail!("{primitive} needs to know where the filter runs: add --hook xdp, tc-ingress, tc-egress or socket")
        }
        other => other?,
    };
    Ok(match plan.program {
        None => blob.function_object(&plan.function_name)?,
        Some(kind) => blob.program_object(kind, plan.invert)?,
    })
}
