//! The two `bpf(2)` calls the runner does not offer: loading a program with
//! BTF function info (needed for LD_ABS in a subprogram) and reading the
//! per-function JIT sizes. Everything else goes through
//! `xcap_runner::kernel`.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use cbpf2ebpf::ebpf::{to_bytes, Insn};
use xcap_runner::kernel::ProgType;

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_BTF_LOAD: libc::c_int = 18;

unsafe fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> libc::c_long {
    libc::syscall(
        libc::SYS_bpf,
        cmd,
        attr as *mut T as *mut libc::c_void,
        size_of::<T>() as libc::c_uint,
    )
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `attach_btf_id`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
}

#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
}

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
    let mut attr = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        btf_size: blob.len() as u32,
        btf_log_buf: log.as_mut_ptr() as u64,
        btf_log_size: log.len() as u32,
        btf_log_level: 1,
    };
    // SAFETY: the buffers outlive the call.
    let fd = unsafe { sys_bpf(BPF_BTF_LOAD, &mut attr) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        return Err(io::Error::new(
            e.kind(),
            format!("BTF_LOAD: {e}: {}", String::from_utf8_lossy(&log[..end])),
        ));
    }
    // SAFETY: a descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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
    let func_info: Vec<u32> = funcs
        .iter()
        .enumerate()
        .flat_map(|(i, &off)| [off as u32, 3 + i as u32])
        .collect();
    let bytes = to_bytes(insns);
    let license = c"Dual MIT/GPL";
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let mut log = vec![0u8; 1 << 20];
    let mut attr = ProgLoadAttr {
        prog_type: prog_type.0,
        insn_cnt: insns.len() as u32,
        insns: bytes.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        // The kernel loads SYSCALL programs only as sleepable.
        prog_flags: if prog_type == ProgType::SYSCALL {
            1 << 4
        } else {
            0
        },
        prog_btf_fd: btf.as_raw_fd() as u32,
        func_info_rec_size: 8,
        func_info: func_info.as_ptr() as u64,
        func_info_cnt: funcs.len() as u32,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: every pointer refers to a live buffer of the given size.
    let fd = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        let tail: Vec<&str> = text
            .lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(io::Error::new(
            e.kind(),
            format!("PROG_LOAD: {e}:\n{}", tail.join("\n")),
        ));
    }
    // SAFETY: a descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// JIT-compiled size of each function of a loaded program, in bytes
/// (`bpf_prog_info.jited_func_lens`), main program first.
pub fn jited_func_lens(prog: impl AsFd) -> io::Result<Vec<u32>> {
    let mut lens = vec![0u32; 64];
    let mut info = [0u8; 256];
    // nr_jited_func_lens at 108, jited_func_lens at 120.
    info[108..112].copy_from_slice(&(lens.len() as u32).to_le_bytes());
    info[120..128].copy_from_slice(&(lens.as_mut_ptr() as u64).to_le_bytes());
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = InfoAttr {
        bpf_fd: prog.as_fd().as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: the buffers outlive the call.
    let r = unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = u32::from_le_bytes(info[108..112].try_into().unwrap()) as usize;
    lens.truncate(n.min(64));
    Ok(lens)
}
