//! What the runner does not offer: loading a program with BTF function
//! info (needed for LD_ABS in a subprogram) and reading the per-function
//! JIT sizes, on top of `bpf_sys`. Everything else goes through
//! `xcap_runner::kernel`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use cbpf2ebpf::ebpf::{to_bytes, Insn};
use xcap_runner::kernel::ProgType;

fn btf_load(blob: &[u8]) -> io::Result<OwnedFd> {
    let mut log = vec![0u8; 64 << 10];
    bpf_sys::btf_load(blob, Some(&mut log)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("BTF_LOAD: {e}: {}", bpf_sys::log_text(&log)),
        )
    })
}

/// Loads `insns` whose subprograms start at `funcs` (the first is 0) with
/// BTF function info, so that subprograms may use LD_ABS/LD_IND (the
/// verifier refuses those in subprograms without BTF). On refusal the error
/// carries the end of the verifier log.
pub fn load_with_btf(
    prog_type: ProgType,
    insns: &[Insn],
    funcs: &[usize],
    name: &str,
) -> io::Result<OwnedFd> {
    let names: Vec<String> = (0..funcs.len()).map(|i| format!("f{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let btf = btf_load(&bpf_sys::static_funcs_btf(&names))?;
    let func_info = bpf_sys::static_func_info(funcs);
    let bytes = to_bytes(insns);
    let mut log = vec![0u8; 1 << 20];
    let spec = bpf_sys::ProgLoad {
        name,
        prog_type: prog_type.0,
        insns: &bytes,
        // The kernel loads SYSCALL programs only as sleepable.
        flags: if prog_type == ProgType::SYSCALL {
            bpf_sys::BPF_F_SLEEPABLE
        } else {
            0
        },
        func_info: Some((btf.as_fd(), &func_info)),
        ..Default::default()
    };
    bpf_sys::prog_load(&spec, Some(&mut log)).map_err(|e| {
        let text = bpf_sys::log_text(&log);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        io::Error::new(e.kind(), format!("PROG_LOAD: {e}:\n{}", tail.join("\n")))
    })
}

/// JIT-compiled size of each function of a loaded program, in bytes
/// (`bpf_prog_info.jited_func_lens`), main program first.
pub fn jited_func_lens(prog: impl AsFd) -> io::Result<Vec<u32>> {
    Ok(bpf_sys::prog_info(prog.as_fd())?.jited_func_lens)
}
