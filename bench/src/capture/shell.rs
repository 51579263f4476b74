//! Running the setup commands (`ip`, `tc`, `clang`, `bpftool`).

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `args` and returns its output; a failure carries its stderr.
pub(super) fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
