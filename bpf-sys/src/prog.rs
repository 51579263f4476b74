//! Programs: load (with an optional log and func_info), test-run, what
//! the kernel made of them, the loaded ones by id, run-time statistics.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::{
    bpf, bpf_fd, log_fields, object_name, ptr_or_null, BPF_ENABLE_STATS, BPF_OBJ_GET,
    BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_GET_FD_BY_ID, BPF_PROG_GET_NEXT_ID, BPF_PROG_LOAD,
    BPF_PROG_TEST_RUN, PROG_TYPE_SOCKET_FILTER,
};

/// What `BPF_PROG_LOAD` needs.
#[derive(Clone, Copy, Debug)]
pub struct ProgLoad<'a> {
    pub name: &'a str,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// `BPF_F_*` program flags.
    pub flags: u32,
    /// The instructions, 8 bytes each (`bpf_insn`, little-endian).
    pub insns: &'a [u8],
    pub license: &'a CStr,
    pub kernel_version: u32,
    /// BTF with `func_info` records (`[insn_off, type_id]` pairs), which a
    /// program needs for LD_ABS/LD_IND in subprograms.
    pub func_info: Option<(BorrowedFd<'a>, &'a [[u32; 2]])>,
    /// Tracing programs (fentry, fexit): the function they attach to, a
    /// type id in the BTF of `attach_prog` (a loaded BPF program) or, when
    /// `attach_prog` is `None`, in the kernel's BTF.
    pub attach_btf_id: u32,
    pub attach_prog: Option<BorrowedFd<'a>>,
}

impl Default for ProgLoad<'_> {
    fn default() -> Self {
        ProgLoad {
            name: "",
            prog_type: 0,
            expected_attach_type: 0,
            flags: 0,
            insns: &[],
            // GPL-compatible: some helpers xcap uses are GPL-only.
            license: c"Dual MIT/GPL",
            kernel_version: 0,
            func_info: None,
            attach_btf_id: 0,
            attach_prog: None,
        }
    }
}

/// Loads a program. With `log`, the verifier writes its log there (level
/// 1); verifying with a log is slower, so callers load without one first
/// and again with one to explain a refusal ([`log_text`](crate::log_text)).
pub fn prog_load(spec: &ProgLoad<'_>, log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
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
        attach_prog_fd: u32,
        _rest: [u32; 15],
    }
    let (log_level, log_size, log_buf) = log_fields(log);
    let (btf_fd, func_info, func_info_cnt) = match spec.func_info {
        Some((btf, recs)) => (
            btf.as_raw_fd() as u32,
            recs.as_ptr() as u64,
            recs.len() as u32,
        ),
        None => (0, 0, 0),
    };
    bpf_fd(
        BPF_PROG_LOAD,
        &mut Attr {
            prog_type: spec.prog_type,
            insn_cnt: (spec.insns.len() / 8) as u32,
            insns: spec.insns.as_ptr() as u64,
            license: spec.license.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            kern_version: spec.kernel_version,
            prog_flags: spec.flags,
            prog_name: object_name(spec.name),
            prog_ifindex: 0,
            expected_attach_type: spec.expected_attach_type,
            prog_btf_fd: btf_fd,
            func_info_rec_size: if func_info_cnt > 0 { 8 } else { 0 },
            func_info,
            func_info_cnt,
            line_info_rec_size: 0,
            line_info: 0,
            line_info_cnt: 0,
            attach_btf_id: spec.attach_btf_id,
            attach_prog_fd: spec.attach_prog.map_or(0, |p| p.as_raw_fd() as u32),
            _rest: [0; 15],
        },
    )
}

/// Whether this kernel loads `gotol` (`BPF_JMP32 | BPF_JA`: a jump with a
/// 32-bit offset in `imm`; Linux 6.6, and 6.1.72 on in the 6.1 series).
/// Asked once per process, by loading a four-instruction socket filter
/// whose every instruction is reachable only if `gotol` jumps by its
/// `imm`: `r0 = 0; gotol +1; exit; gotol -2`. Older verifiers refuse it
/// ("unknown opcode 06"). False too when the load fails for any other
/// reason (no privileges: then nothing else loads either), so a caller
/// falls back to what every kernel runs.
pub fn kernel_has_gotol() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        #[rustfmt::skip]
        let insns: [u8; 32] = [
            0xb7, 0, 0, 0, 0, 0, 0, 0, // r0 = 0
            0x06, 0, 0, 0, 1, 0, 0, 0, // gotol +1
            0x95, 0, 0, 0, 0, 0, 0, 0, // exit
            0x06, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, // gotol -2
        ];
        prog_load(
            &ProgLoad {
                name: "xcap_gotol",
                prog_type: PROG_TYPE_SOCKET_FILTER,
                insns: &insns,
                ..Default::default()
            },
            None,
        )
        .is_ok()
    })
}

/// Input of one [`test_run`].
#[derive(Clone, Debug, Default)]
pub struct TestRun<'a> {
    pub data_in: &'a [u8],
    /// Capacity of the data output buffer (0: no output wanted).
    pub data_out_len: usize,
    pub ctx_in: &'a [u8],
    /// Capacity of the context output buffer.
    pub ctx_out_len: usize,
    /// How many times to run (0 and 1 both run once); for timing.
    pub repeat: u32,
}

/// What a [`test_run`] gave back.
#[derive(Clone, Debug, Default)]
pub struct TestRunResult {
    pub retval: u32,
    pub data_out: Vec<u8>,
    pub ctx_out: Vec<u8>,
    /// Mean run time in nanoseconds, as the kernel measured it.
    pub duration_ns: u32,
}

/// `BPF_PROG_TEST_RUN`.
pub fn test_run(prog: BorrowedFd<'_>, args: &TestRun<'_>) -> io::Result<TestRunResult> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }
    let mut data_out = vec![0u8; args.data_out_len];
    let mut ctx_out = vec![0u8; args.ctx_out_len];
    let mut attr = Attr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: args.data_in.len() as u32,
        data_size_out: data_out.len() as u32,
        data_in: ptr_or_null(args.data_in),
        data_out: ptr_or_null(&data_out),
        repeat: args.repeat,
        duration: 0,
        ctx_size_in: args.ctx_in.len() as u32,
        ctx_size_out: ctx_out.len() as u32,
        ctx_in: ptr_or_null(args.ctx_in),
        ctx_out: ptr_or_null(&ctx_out),
        flags: 0,
        cpu: 0,
        batch_size: 0,
        _pad: 0,
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    data_out.truncate(attr.data_size_out as usize);
    ctx_out.truncate(attr.ctx_size_out as usize);
    Ok(TestRunResult {
        retval: attr.retval,
        data_out,
        ctx_out,
        duration_ns: attr.duration,
    })
}

/// The parts of `struct bpf_prog_info` xcap reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgInfo {
    pub prog_type: u32,
    pub id: u32,
    /// Size of the JIT-compiled code in bytes (0 without the JIT).
    pub jited_prog_len: u32,
    /// Size of the program after the kernel's rewrites, in bytes.
    pub xlated_prog_len: u32,
    /// Instructions the verifier processed (kernel 5.16+, else `None`).
    pub verified_insns: Option<u32>,
    /// JIT-compiled size of each function, main program first.
    pub jited_func_lens: Vec<u32>,
    /// The program's name (at most 15 bytes).
    pub name: String,
    /// Time spent in the program and runs, counted while run-time
    /// statistics are on ([`enable_run_time_stats`]).
    pub run_time_ns: u64,
    pub run_cnt: u64,
    /// The id of the program's BTF (0: it has none).
    pub btf_id: u32,
    /// The BTF type id of the main function (its first `func_info`
    /// record), 0 without BTF: what fentry/fexit on the program attach to.
    pub main_func_btf_id: u32,
    /// Kernel address of each JIT-compiled function, main program first
    /// (zeros for a caller the kernel does not show addresses to).
    pub jited_ksyms: Vec<u64>,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a program.
pub fn prog_info(prog: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // struct bpf_prog_info is 232 bytes on 6.18; ask for a little more and
    // let the kernel say how much it filled in.
    let mut info = [0u8; 256];
    let mut func_lens = vec![0u32; 256];
    let mut ksyms = vec![0u64; 256];
    let mut func_info = vec![[0u32; 2]; 256];
    // nr_jited_ksyms at 104, nr_jited_func_lens at 108, jited_ksyms at
    // 112, jited_func_lens at 120; func_info_rec_size at 132, func_info at
    // 136, nr_func_info at 144.
    info[104..108].copy_from_slice(&(ksyms.len() as u32).to_le_bytes());
    info[108..112].copy_from_slice(&(func_lens.len() as u32).to_le_bytes());
    info[112..120].copy_from_slice(&(ksyms.as_mut_ptr() as u64).to_le_bytes());
    info[120..128].copy_from_slice(&(func_lens.as_mut_ptr() as u64).to_le_bytes());
    info[132..136].copy_from_slice(&8u32.to_le_bytes());
    info[136..144].copy_from_slice(&(func_info.as_mut_ptr() as u64).to_le_bytes());
    info[144..148].copy_from_slice(&(func_info.len() as u32).to_le_bytes());
    let mut attr = Attr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let filled = attr.info_len as usize;
    let u32_at = |off: usize| {
        (off + 4 <= filled).then(|| u32::from_le_bytes(info[off..off + 4].try_into().unwrap()))
    };
    func_lens.truncate((u32_at(108).unwrap_or(0) as usize).min(256));
    ksyms.truncate((u32_at(104).unwrap_or(0) as usize).min(256));
    let main_func_btf_id = match u32_at(144) {
        Some(n) if n > 0 => func_info[0][1],
        _ => 0,
    };
    let u64_at = |off: usize| {
        (off + 8 <= filled).then(|| u64::from_le_bytes(info[off..off + 8].try_into().unwrap()))
    };
    let name = &info[64..80];
    let name_len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(ProgInfo {
        prog_type: u32_at(0).unwrap_or(0),
        id: u32_at(4).unwrap_or(0),
        jited_prog_len: u32_at(16).unwrap_or(0),
        xlated_prog_len: u32_at(20).unwrap_or(0),
        verified_insns: u32_at(216),
        jited_func_lens: func_lens,
        name: String::from_utf8_lossy(&name[..name_len]).into_owned(),
        run_time_ns: u64_at(192).unwrap_or(0),
        run_cnt: u64_at(200).unwrap_or(0),
        btf_id: u32_at(128).unwrap_or(0),
        main_func_btf_id,
        jited_ksyms: ksyms,
    })
}

/// The ids of every loaded program, in increasing order
/// (`BPF_PROG_GET_NEXT_ID`).
pub fn prog_ids() -> io::Result<Vec<u32>> {
    crate::next_ids(BPF_PROG_GET_NEXT_ID)
}

/// An fd of the loaded program `id` (`BPF_PROG_GET_FD_BY_ID`).
pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    bpf_fd(
        BPF_PROG_GET_FD_BY_ID,
        &mut Attr {
            prog_id: id,
            next_id: 0,
            open_flags: 0,
        },
    )
}

/// An fd of the program pinned at `path` in a BPF filesystem
/// (`BPF_OBJ_GET`).
pub fn obj_get(path: &CStr) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    bpf_fd(
        BPF_OBJ_GET,
        &mut Attr {
            pathname: path.as_ptr() as u64,
            bpf_fd: 0,
            file_flags: 0,
        },
    )
}

/// Turns the kernel's BPF run-time statistics on (`BPF_ENABLE_STATS`) for
/// as long as the returned fd is open.
pub fn enable_run_time_stats() -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        stats_type: u32,
    }
    // BPF_STATS_RUN_TIME = 0.
    bpf_fd(BPF_ENABLE_STATS, &mut Attr { stats_type: 0 })
}
