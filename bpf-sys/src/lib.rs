//! # xcap-bpf-sys
//!
//! The `bpf(2)` commands xcap uses, on raw file descriptors, with no libbpf
//! and no aya: loading programs (with an optional verifier log and BTF
//! function info), running them (`BPF_PROG_TEST_RUN`), reading what the
//! kernel made of them, and the map and link commands of a live capture.
//! Each attr struct is the prefix of the kernel's `union bpf_attr` that the
//! command reads, padded with zeros (the kernel accepts a longer attr whose
//! tail is zero). Errors are `io::Error`s; what a refusal means is the
//! caller's to say (see [`log_text`]).
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! // r0 = 2 (XDP_PASS); exit
//! let insns = [0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
//! let prog = bpf_sys::prog_load(
//!     &bpf_sys::ProgLoad {
//!         name: "pass",
//!         prog_type: bpf_sys::PROG_TYPE_XDP,
//!         insns: &insns,
//!         ..Default::default()
//!     },
//!     None,
//! )?;
//! let run = bpf_sys::test_run(prog.as_fd(), &bpf_sys::TestRun {
//!     data_in: &[0u8; 64],
//!     ..Default::default()
//! })?;
//! assert_eq!(run.retval, 2);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::borrow::Cow;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
const BPF_PROG_GET_NEXT_ID: libc::c_int = 11;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_int = 17;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_BTF_LOAD: libc::c_int = 18;
const BPF_MAP_FREEZE: libc::c_int = 22;
const BPF_MAP_UPDATE_BATCH: libc::c_int = 26;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_LINK_UPDATE: libc::c_int = 29;
const BPF_ENABLE_STATS: libc::c_int = 32;

/// `enum bpf_prog_type` values xcap loads.
pub const PROG_TYPE_SOCKET_FILTER: u32 = 1;
pub const PROG_TYPE_SCHED_CLS: u32 = 3;
pub const PROG_TYPE_XDP: u32 = 6;
pub const PROG_TYPE_TRACING: u32 = 26;
pub const PROG_TYPE_SYSCALL: u32 = 31;

/// `enum bpf_map_type` values xcap creates by hand.
pub const MAP_TYPE_ARRAY: u32 = 2;
pub const MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;
pub const MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
pub const MAP_TYPE_RINGBUF: u32 = 27;

/// `enum bpf_attach_type` values xcap links with.
/// Tracing programs: `tp_btf` (`BPF_TRACE_RAW_TP`) and `fentry`.
pub const BPF_TRACE_RAW_TP: u32 = 23;
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_XDP: u32 = 37;
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;

/// `BPF_F_SLEEPABLE`: the only way the kernel loads SYSCALL programs.
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_XDP_HAS_FRAGS`: an XDP program that handles multi-buffer packets.
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// `BPF_F_MMAPABLE`: an array map user space can mmap.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, fully initialised repr(C) struct of the
    // layout `cmd` expects; the pointers inside it point at live buffers of
    // the sizes given next to them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bpf_fd<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the command returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn ptr_or_null(b: &[u8]) -> u64 {
    if b.is_empty() {
        0
    } else {
        b.as_ptr() as u64
    }
}

/// A kernel object name: at most 15 bytes of `[A-Za-z0-9_.]`, NUL-padded.
pub fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(
        name.bytes()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
            .take(15),
    ) {
        *o = b;
    }
    out
}

/// The text of a verifier (or BTF) log buffer, up to its NUL.
pub fn log_text(log: &[u8]) -> Cow<'_, str> {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    String::from_utf8_lossy(&log[..end])
}

/// (level, size, address) of an optional log buffer: level 1 with one.
fn log_fields(log: Option<&mut [u8]>) -> (u32, u32, u64) {
    match log {
        Some(l) if !l.is_empty() => (1, l.len() as u32, l.as_mut_ptr() as u64),
        _ => (0, 0, 0),
    }
}

// ---------------------------------------------------------------------------
// Programs

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
    /// Tracing programs: the BTF type id of what they attach to (a
    /// `btf_trace_<tracepoint>` typedef, a function), in the kernel's BTF
    /// or, with `attach_prog_fd`, in that program's.
    pub attach_btf_id: u32,
    /// `freplace` and tracing programs attached to another BPF program.
    pub attach_prog_fd: Option<BorrowedFd<'a>>,
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
            attach_prog_fd: None,
        }
    }
}

/// A minimal BTF blob for `func_info`: `int`, one `int (void)` prototype
/// and a static function of that prototype per name in `names` (type ids
/// 3, 4, ...). The kernel wants func_info, with static linkage, for every
/// function of a program that takes a callback's address (`bpf_loop`) and
/// of one whose subprograms use LD_ABS; it checks no argument of a static
/// function against its prototype.
pub fn static_funcs_btf(names: &[&str]) -> Vec<u8> {
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
    for name in names {
        let off = strings.len() as u32;
        let clean: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        strings.extend_from_slice(clean.as_bytes());
        strings.push(0);
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

/// func_info records for functions starting at `starts` (slot indices,
/// the first 0) described by [`static_funcs_btf`] with as many names.
pub fn static_func_info(starts: &[usize]) -> Vec<[u32; 2]> {
    starts
        .iter()
        .enumerate()
        .map(|(i, &off)| [off as u32, 3 + i as u32])
        .collect()
}

/// Loads a program. With `log`, the verifier writes its log there (level
/// 1); verifying with a log is slower, so callers load without one first
/// and again with one to explain a refusal ([`log_text`]).
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
        _rest: [u64; 8],
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
            attach_prog_fd: spec.attach_prog_fd.map_or(0, |fd| fd.as_raw_fd() as u32),
            _rest: [0; 8],
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

/// Loads a BTF blob; `log` as for [`prog_load`].
pub fn btf_load(blob: &[u8], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        btf: u64,
        btf_log_buf: u64,
        btf_size: u32,
        btf_log_size: u32,
        btf_log_level: u32,
        _rest: [u32; 5],
    }
    let (level, size, buf) = log_fields(log);
    bpf_fd(
        BPF_BTF_LOAD,
        &mut Attr {
            btf: blob.as_ptr() as u64,
            btf_log_buf: buf,
            btf_size: blob.len() as u32,
            btf_log_size: size,
            btf_log_level: level,
            _rest: [0; 5],
        },
    )
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
    // nr_jited_func_lens at 108, jited_func_lens at 120.
    info[108..112].copy_from_slice(&(func_lens.len() as u32).to_le_bytes());
    info[120..128].copy_from_slice(&(func_lens.as_mut_ptr() as u64).to_le_bytes());
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
    })
}

/// The ids of every loaded program, in increasing order
/// (`BPF_PROG_GET_NEXT_ID`).
pub fn prog_ids() -> io::Result<Vec<u32>> {
    #[repr(C)]
    struct Attr {
        start_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut ids = Vec::new();
    let mut attr = Attr {
        start_id: 0,
        next_id: 0,
        open_flags: 0,
    };
    loop {
        match bpf(BPF_PROG_GET_NEXT_ID, &mut attr) {
            Ok(_) => {
                ids.push(attr.next_id);
                attr.start_id = attr.next_id;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(ids),
            Err(e) => return Err(e),
        }
    }
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

// ---------------------------------------------------------------------------
// Maps

/// What `BPF_MAP_CREATE` needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapSpec<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// Maps of maps: a map like the ones it will hold.
    pub inner_map_fd: Option<RawFd>,
}

pub fn map_create(spec: &MapSpec<'_>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; 16],
        _rest: [u32; 17],
    }
    bpf_fd(
        BPF_MAP_CREATE,
        &mut Attr {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags,
            inner_map_fd: spec.inner_map_fd.unwrap_or(0) as u32,
            numa_node: 0,
            map_name: object_name(spec.name),
            _rest: [0; 17],
        },
    )
}

#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Writes `value` at `key`. The caller passes slices of the map's key and
/// value sizes (for per-CPU maps: the value size rounded up to 8, times the
/// number of possible CPUs).
pub fn map_update(map: RawFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    bpf(
        BPF_MAP_UPDATE_ELEM,
        &mut ElemAttr {
            map_fd: map as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags: 0,
        },
    )
    .map(drop)
}

/// Writes `count` entries in one call: `keys` and `values` hold them back
/// to back (sizes as for [`map_update`]). For maps of maps this waits for
/// one RCU grace period in all, where [`map_update`] waits for one each.
pub fn map_update_batch(map: RawFd, keys: &[u8], values: &[u8], count: u32) -> io::Result<()> {
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    let mut attr = BatchAttr {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: map as u32,
        elem_flags: 0,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr)?;
    if attr.count != count {
        return Err(io::Error::other(format!(
            "batch update wrote {} of {count} entries",
            attr.count
        )));
    }
    Ok(())
}

/// Reads the value at `key` into `value` (sized as for [`map_update`]).
pub fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    bpf(
        BPF_MAP_LOOKUP_ELEM,
        &mut ElemAttr {
            map_fd: map.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        },
    )
    .map(drop)
}

/// Makes a map read-only for user space (`.rodata` after its values are set).
pub fn map_freeze(map: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _rest: [u32; 7],
    }
    bpf(
        BPF_MAP_FREEZE,
        &mut Attr {
            map_fd: map.as_raw_fd() as u32,
            _rest: [0; 7],
        },
    )
    .map(drop)
}

// ---------------------------------------------------------------------------
// Links

/// Creates a link of `attach_type` for `prog` on `ifindex`. A link
/// detaches when its last fd is closed, however the process ends.
pub fn link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        target_ifindex: u32,
        attach_type: u32,
        flags: u32,
        /// tcx.relative_fd / relative_id
        relative: u32,
        _pad: u32,
        /// tcx.expected_revision
        expected_revision: u64,
        _rest: [u64; 4],
    }
    bpf_fd(
        BPF_LINK_CREATE,
        &mut Attr {
            prog_fd: prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type,
            flags,
            relative: 0,
            _pad: 0,
            expected_revision: 0,
            _rest: [0; 4],
        },
    )
}

/// Attaches a tracing program (`tp_btf`, `fentry`: its target was given
/// at load, `name` is `None`) or a raw tracepoint program (`name`) with
/// `BPF_RAW_TRACEPOINT_OPEN`, which every kernel with BTF programs has
/// (5.5). The returned fd is the attachment: closing it detaches.
pub fn raw_tracepoint_open(prog: BorrowedFd<'_>, name: Option<&CStr>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        name: u64,
        prog_fd: u32,
        _pad: u32,
        _rest: [u64; 2],
    }
    bpf_fd(
        BPF_RAW_TRACEPOINT_OPEN,
        &mut Attr {
            name: name.map_or(0, |n| n.as_ptr() as u64),
            prog_fd: prog.as_raw_fd() as u32,
            _pad: 0,
            _rest: [0; 2],
        },
    )
}

/// Swaps the program of a link in place: no detach, no window without a
/// program, and (unlike a new attach) no RCU grace period to wait for.
pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
        _rest: [u64; 2],
    }
    bpf(
        BPF_LINK_UPDATE,
        &mut Attr {
            link_fd: link.as_raw_fd() as u32,
            new_prog_fd: prog.as_raw_fd() as u32,
            flags: 0,
            old_prog_fd: 0,
            _rest: [0; 2],
        },
    )
    .map(drop)
}
