//! What the runner does not offer: loading a program with BTF function
//! info (needed for LD_ABS in a subprogram) and reading the per-function
//! JIT sizes, on top of `bpf_sys`. Everything else goes through
//! `xcap_runner::kernel`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use cbpf2ebpf::ebpf::{to_bytes, Insn};
use xcap_runner::kernel::ProgType;

/// A minimal BTF blob: `int`, one `int (void)` prototype and `nfuncs`
/// static functions `f0`, `f1`, ... of that prototype (type ids 3..).
fn btf_blob(nfuncs: usize) -> Vec<u8> {
    let mut strings = b"\0int\0".to_vec();
    let mut types: Vec<u32> = vec![
        // 1: INT "int", 4 bytes, signed, 32 bits.
        1,
        1 << 24,
        4,
        0x0100_0020,
        // 2: FUNC_PROTO returning int, no parameters.
        0,
        13 << 24,
        1,
    ];
    for i in 0..nfuncs {
        let off = strings.len() as u32;
        strings.extend_from_slice(format!("f{i}\0").as_bytes());
        // FUNC, static linkage, type 2.
        types.extend_from_slice(&[off, 12 << 24, 2]);
    }
    let type_bytes: Vec<u8> = types.iter().flat_map(|t| t.to_le_bytes()).collect();
    let mut b = Vec::new();
    b.extend_from_slice(&0xeb9fu16.to_le_bytes());
    b.push(1); // version
    b.push(0); // flags
    b.extend_from_slice(&24u32.to_le_bytes()); // hdr_len
    b.extend_from_slice(&0u32.to_le_bytes()); // type_off
    b.extend_from_slice(&(type_bytes.len() as u32).to_le_bytes());
    b.extend_from_slice(&(type_bytes.len() as u32).to_le_bytes()); // str_off
    b.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    b.extend_from_slice(&type_bytes);
    b.extend_from_slice(&strings);
    b
}

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
    let btf = btf_load(&btf_blob(funcs.len()))?;
    let func_info: Vec<[u32; 2]> = funcs
        .iter()
        .enumerate()
        .map(|(i, &off)| [off as u32, 3 + i as u32])
        .collect();
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
