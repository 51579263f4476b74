//! libpcap itself, through FFI: compile tcpdump expressions to cBPF and run
//! libpcap's own interpreter, `bpf_filter()`, which is the reference
//! semantics the translation must reproduce (it is what
//! `pcap_offline_filter()` and `tcpdump -r` use).
//!
//! The `pcap` crate links the library; the few C functions needed are
//! declared here because the crate does not expose them in the needed form
//! (it has no `bpf_filter` with a separate capture length, and its dead
//! handles fix the snap length at 65535).
//!
//! libpcap 1.10's compiler and `bpf_image()` use global state, so every call
//! into them takes `LIBPCAP_LOCK`.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::sync::{Mutex, MutexGuard};

use thiserror::Error;

use crate::cbpf::{op, Insn};

// Force the `pcap` crate (and with it `-lpcap`) into the link.
use pcap as _;

/// Ethernet.
pub const DLT_EN10MB: i32 = 1;
/// Raw IP, version taken from the first nibble (12 on Linux; `LINKTYPE_RAW`
/// in files is 101, which libpcap maps to this).
pub const DLT_RAW: i32 = 12;
/// Raw IPv4.
pub const DLT_IPV4: i32 = 228;
/// Raw IPv6.
pub const DLT_IPV6: i32 = 229;
/// Linux "cooked" capture, version 1 (`any` device).
pub const DLT_LINUX_SLL: i32 = 113;

/// The snap length tcpdump uses by default; compiled filters return it on a
/// match.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// `PCAP_NETMASK_UNKNOWN`: `ip broadcast` then fails to compile.
pub const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// `struct bpf_insn`, as C lays it out.
#[repr(C)]
#[derive(Clone, Copy)]
struct CInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

impl From<&Insn> for CInsn {
    fn from(i: &Insn) -> Self {
        CInsn {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        }
    }
}

/// `struct bpf_program`.
#[repr(C)]
struct CProgram {
    len: c_uint,
    insns: *mut CInsn,
}

/// `pcap_t`, opaque.
#[repr(C)]
struct PcapHandle {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut PcapHandle;
    fn pcap_create(source: *const c_char, errbuf: *mut c_char) -> *mut PcapHandle;
    fn pcap_set_snaplen(p: *mut PcapHandle, snaplen: c_int) -> c_int;
    fn pcap_set_buffer_size(p: *mut PcapHandle, size: c_int) -> c_int;
    fn pcap_activate(p: *mut PcapHandle) -> c_int;
    fn pcap_snapshot(p: *mut PcapHandle) -> c_int;
    fn pcap_close(p: *mut PcapHandle);
    fn pcap_compile(
        p: *mut PcapHandle,
        prog: *mut CProgram,
        expr: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_freecode(prog: *mut CProgram);
    fn pcap_geterr(p: *mut PcapHandle) -> *mut c_char;
    fn pcap_datalink_name_to_val(name: *const c_char) -> c_int;
    fn pcap_datalink_val_to_name(linktype: c_int) -> *const c_char;
    fn bpf_filter(prog: *const CInsn, packet: *const u8, wirelen: c_uint, buflen: c_uint)
        -> c_uint;
    fn bpf_image(insn: *const CInsn, n: c_int) -> *mut c_char;
}

/// Serialises calls into libpcap's non-reentrant parts (the compiler's
/// parser state, `bpf_image`'s static buffer).
static LIBPCAP_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    // A panic while holding the lock leaves no libpcap state half-changed
    // that matters to the next caller, so poisoning is ignored.
    LIBPCAP_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why libpcap refused an expression. Displays libpcap's own message
/// (`pcap_geterr`), e.g. `syntax error`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
}

impl CompileError {
    fn new(message: impl Into<String>) -> Self {
        CompileError {
            message: message.into(),
        }
    }
}

/// Compiles `expr` as tcpdump does: optimised, netmask unknown.
pub fn compile(expr: &str, linktype: i32, snaplen: u32) -> Result<Vec<Insn>, CompileError> {
    compile_with(expr, linktype, snaplen, true, NETMASK_UNKNOWN)
}

/// Compiles `expr` for a dead handle of `linktype` and `snaplen`.
/// `netmask` is in host byte order (`255.255.255.0` is `0xffffff00`).
pub fn compile_with(
    expr: &str,
    linktype: i32,
    snaplen: u32,
    optimize: bool,
    netmask: u32,
) -> Result<Vec<Insn>, CompileError> {
    let expr =
        CString::new(expr).map_err(|_| CompileError::new("expression contains a NUL byte"))?;
    let snaplen = c_int::try_from(snaplen)
        .map_err(|_| CompileError::new(format!("snaplen {snaplen} is too large")))?;
    let _guard = lock();
    // SAFETY: a handle we own, closed by `compile_on_handle`.
    unsafe {
        let handle = pcap_open_dead(linktype, snaplen);
        if handle.is_null() {
            return Err(CompileError::new(format!(
                "pcap_open_dead({linktype}) failed"
            )));
        }
        let result = compile_on_handle(handle, &expr, optimize, netmask);
        pcap_close(handle);
        result
    }
}

/// Compiles `expr` on a handle the caller opened (a savefile's, as
/// tcpdump does for `-r`: on a savefile libpcap refuses `inbound`,
/// `outbound` and `ifindex`, where a dead handle emits ancillary loads).
///
/// # Safety
/// `handle` must be a valid, open `pcap_t` (e.g. `pcap::Capture::as_ptr`).
pub unsafe fn compile_on(
    handle: *mut std::ffi::c_void,
    expr: &str,
    optimize: bool,
    netmask: u32,
) -> Result<Vec<Insn>, CompileError> {
    let expr =
        CString::new(expr).map_err(|_| CompileError::new("expression contains a NUL byte"))?;
    let _guard = lock();
    // SAFETY: the caller gives an open handle; we hold the lock.
    unsafe { compile_on_handle(handle.cast(), &expr, optimize, netmask) }
}

/// The snapshot length of an open handle.
///
/// # Safety
/// `handle` must be a valid, open `pcap_t`.
pub unsafe fn snapshot(handle: *mut std::ffi::c_void) -> i32 {
    // SAFETY: the caller gives an open handle.
    unsafe { pcap_snapshot(handle.cast()) }
}

/// Compiles `expr` as libpcap does for a live capture on `interface`.
///
/// On Linux a live handle generates different code for `vlan`: the kernel
/// has taken the tag out of the packet by the time packet sockets (and TC
/// programs) see it, so libpcap tests the tag with the `SKF_AD_VLAN_*`
/// ancillary loads. This is the program tcpdump runs on that interface;
/// translate it for a TC hook, where those loads read `__sk_buff`. Opening
/// the handle needs `CAP_NET_RAW`; no packet is read.
pub fn compile_live(expr: &str, interface: &str, snaplen: u32) -> Result<Vec<Insn>, CompileError> {
    let expr =
        CString::new(expr).map_err(|_| CompileError::new("expression contains a NUL byte"))?;
    let source = CString::new(interface)
        .map_err(|_| CompileError::new("interface name contains a NUL byte"))?;
    let snaplen = c_int::try_from(snaplen)
        .map_err(|_| CompileError::new(format!("snaplen {snaplen} is too large")))?;
    let _guard = lock();
    let mut errbuf = [0 as c_char; 256];
    // SAFETY: libpcap calls on a handle we own; `errbuf` is PCAP_ERRBUF_SIZE.
    unsafe {
        let handle = pcap_create(source.as_ptr(), errbuf.as_mut_ptr());
        if handle.is_null() {
            return Err(CompileError::new(
                CStr::from_ptr(errbuf.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            ));
        }
        pcap_set_snaplen(handle, snaplen);
        // A small buffer: the handle exists only to compile.
        pcap_set_buffer_size(handle, 65536);
        let status = pcap_activate(handle);
        if status < 0 {
            let message = CStr::from_ptr(pcap_geterr(handle))
                .to_string_lossy()
                .into_owned();
            pcap_close(handle);
            return Err(CompileError::new(format!("{interface}: {message}")));
        }
        let result = compile_on_handle(handle, &expr, true, NETMASK_UNKNOWN);
        close_in_background(handle);
        result
    }
}

/// A live handle whose only remaining use is to be closed.
struct Closing(*mut PcapHandle);

// SAFETY: nothing else holds the pointer; libpcap only needs the handle not
// to be used by two threads at once.
unsafe impl Send for Closing {}

/// Closes a live handle on its own thread. Closing a packet socket waits
/// for two RCU grace periods in the kernel (about 24 ms here, longer than
/// opening and compiling together), and nothing the caller does next
/// depends on it. If the process exits first, the kernel closes the socket.
fn close_in_background(handle: *mut PcapHandle) {
    let closing = Closing(handle);
    let spawned = std::thread::Builder::new()
        .name("pcap-close".into())
        .spawn(move || {
            let closing = closing;
            // SAFETY: the handle came from pcap_create and is closed once.
            unsafe { pcap_close(closing.0) }
        });
    if spawned.is_err() {
        // SAFETY: no thread, so the closure was dropped without running.
        unsafe { pcap_close(handle) }
    }
}

/// Compiles on `handle` and copies the program out.
///
/// # Safety
/// `handle` must be a valid handle; the caller holds the libpcap lock.
unsafe fn compile_on_handle(
    handle: *mut PcapHandle,
    expr: &CStr,
    optimize: bool,
    netmask: u32,
) -> Result<Vec<Insn>, CompileError> {
    let mut prog = CProgram {
        len: 0,
        insns: std::ptr::null_mut(),
    };
    // SAFETY: a valid handle (the caller's word), a NUL-terminated
    // expression and a program struct for libpcap to fill.
    let failed =
        unsafe { pcap_compile(handle, &mut prog, expr.as_ptr(), optimize as c_int, netmask) } != 0;
    if failed {
        // SAFETY: the handle's error text, NUL-terminated, or null.
        let message = unsafe { pcap_geterr(handle) };
        return Err(CompileError::new(if message.is_null() {
            "pcap_compile failed".to_string()
        } else {
            // SAFETY: non-null: a C string that lives as long as the handle.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        }));
    }
    let insns = if prog.insns.is_null() {
        &[][..]
    } else {
        // SAFETY: pcap_compile succeeded: `len` instructions at `insns`,
        // ours until pcap_freecode.
        unsafe { std::slice::from_raw_parts(prog.insns, prog.len as usize) }
    };
    let copy = insns
        .iter()
        .map(|c| Insn::new(c.code, c.jt, c.jf, c.k))
        .collect();
    // SAFETY: the program pcap_compile filled, freed once, after the copy.
    unsafe { pcap_freecode(&mut prog) };
    Ok(copy)
}

/// The link type called `name` (`EN10MB`, `DLT_RAW`, `linux_sll`; case
/// does not matter), or a number given as text.
pub fn linktype_from_name(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return Some(n);
    }
    let bare = name
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("DLT_"))
        .map_or(name, |_| &name[4..]);
    let c_name = CString::new(bare).ok()?;
    // SAFETY: a NUL-terminated string; libpcap only reads it.
    let value = unsafe { pcap_datalink_name_to_val(c_name.as_ptr()) };
    (value >= 0).then_some(value)
}

/// libpcap's name for a link type (`EN10MB`), if it has one.
pub fn linktype_name(linktype: i32) -> Option<String> {
    // SAFETY: returns NULL or a pointer into libpcap's static name table.
    unsafe {
        let name = pcap_datalink_val_to_name(linktype);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

/// Why [`try_filter`] refused to hand a program to libpcap's interpreter,
/// which trusts its input: an opcode it does not know makes it `abort()`,
/// a division by constant zero raises SIGFPE, a scratch index past 15 or a
/// jump past the end reads out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnsafeProgram {
    #[error("empty program")]
    Empty,
    #[error("instruction {pc}: opcode {code:#06x} is unknown to libpcap's interpreter")]
    UnknownOpcode { pc: usize, code: u16 },
    #[error("instruction {pc}: scratch memory index {k} is out of range")]
    BadMemIndex { pc: usize, k: u32 },
    #[error("instruction {pc}: division or modulo by constant zero")]
    DivByZero { pc: usize },
    #[error("instruction {pc}: jump past the end of the program")]
    JumpOutOfRange { pc: usize },
    #[error("the last instruction is not a return")]
    NoFinalReturn,
}

/// Runs libpcap's interpreter, `bpf_filter(prog, packet, wirelen,
/// packet.len())`: `packet` is the captured bytes, `wirelen` the length on
/// the wire (it may exceed `packet.len()`). Returns the filter's result (0:
/// reject, otherwise the snap length).
///
/// # Panics
/// If the program would crash libpcap (see [`UnsafeProgram`]); use
/// [`try_filter`] for untrusted programs. Like libpcap, a program whose
/// backward jumps loop forever does not return.
pub fn filter(prog: &[Insn], packet: &[u8], wirelen: u32) -> u32 {
    match try_filter(prog, packet, wirelen) {
        Ok(v) => v,
        Err(e) => panic!("libpcap::filter: {e}"),
    }
}

/// [`filter`], refusing programs that would crash libpcap's interpreter.
pub fn try_filter(prog: &[Insn], packet: &[u8], wirelen: u32) -> Result<u32, UnsafeProgram> {
    check_interpretable(prog)?;
    let insns: Vec<CInsn> = prog.iter().map(CInsn::from).collect();
    // Captures over 4 GiB cannot exist; clamp rather than wrap.
    let buflen = c_uint::try_from(packet.len()).unwrap_or(c_uint::MAX);
    // SAFETY: the program was checked to only use opcodes, scratch indices
    // and jump targets the interpreter handles; it reads at most `buflen`
    // bytes of `packet`. `bpf_filter` is reentrant.
    Ok(unsafe { bpf_filter(insns.as_ptr(), packet.as_ptr(), wirelen, buflen) })
}

/// The opcodes `bpf_filter()` in libpcap 1.10.3 implements; anything else
/// reaches its `abort()`.
fn interpreter_knows(code: u16) -> bool {
    use op::*;
    const KNOWN: &[u16] = &[
        RET | K,
        RET | A,
        LD | W | ABS,
        LD | H | ABS,
        LD | B | ABS,
        LD | W | LEN,
        LDX | W | LEN,
        LD | W | IND,
        LD | H | IND,
        LD | B | IND,
        LDX | MSH | B,
        LD | IMM,
        LDX | IMM,
        LD | MEM,
        LDX | MEM,
        ST,
        STX,
        JMP | JA,
        MISC | TAX,
        MISC | TXA,
        ALU | NEG,
    ];
    let conditional_jump =
        code & 0x07 == JMP && matches!(code & 0xf0, JGT | JGE | JEQ | JSET) && code & !0xf8 == JMP;
    let binary_alu = code & 0x07 == ALU
        && matches!(
            code & 0xf0,
            ADD | SUB | MUL | DIV | MOD | AND | OR | XOR | LSH | RSH
        )
        && code & !0xf8 == ALU;
    KNOWN.contains(&code) || conditional_jump || binary_alu
}

/// Checks what libpcap's interpreter assumes but does not check.
fn check_interpretable(prog: &[Insn]) -> Result<(), UnsafeProgram> {
    use op::*;
    let last = prog.last().ok_or(UnsafeProgram::Empty)?;
    if last.class() != RET {
        return Err(UnsafeProgram::NoFinalReturn);
    }
    let len = prog.len() as u64;
    for (pc, insn) in prog.iter().enumerate() {
        if !interpreter_knows(insn.code) {
            return Err(UnsafeProgram::UnknownOpcode {
                pc,
                code: insn.code,
            });
        }
        let uses_mem =
            insn.code == LD | MEM || insn.code == LDX | MEM || insn.code == ST || insn.code == STX;
        if uses_mem && insn.k >= MEMWORDS {
            return Err(UnsafeProgram::BadMemIndex { pc, k: insn.k });
        }
        if insn.class() == ALU && matches!(insn.op(), DIV | MOD) && insn.src() == K && insn.k == 0 {
            return Err(UnsafeProgram::DivByZero { pc });
        }
        if insn.class() == JMP {
            let next = pc as u64 + 1;
            let in_range = if insn.op() == JA {
                // The interpreter adds k as a signed offset (backward jumps,
                // as `ip6 protochain` emits, are fine).
                let target = next as i64 + insn.k as i32 as i64;
                (0..len as i64).contains(&target)
            } else {
                next + (insn.jt as u64) < len && next + (insn.jf as u64) < len
            };
            if !in_range {
                return Err(UnsafeProgram::JumpOutOfRange { pc });
            }
        }
    }
    Ok(())
}

/// libpcap's `bpf_image(insn, n)`: instruction `n` as `tcpdump -d` prints
/// it.
pub fn image(insn: &Insn, n: usize) -> String {
    let c_insn = CInsn::from(insn);
    let n = c_int::try_from(n).unwrap_or(c_int::MAX);
    let _guard = lock();
    // SAFETY: bpf_image formats into a static buffer (hence the lock), which
    // is copied before the lock is released.
    unsafe {
        CStr::from_ptr(bpf_image(&c_insn, n))
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbpf::ancillary;
    use crate::cbpf::op::*;

    const MATCH: u32 = 0xffff;

    /// An Ethernet + IPv4 + TCP packet (no options) from port 40000 to `dport`.
    fn ipv4_tcp(dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 54];
        p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        p[14] = 0x45; // version 4, IHL 5
        p[16..18].copy_from_slice(&40u16.to_be_bytes()); // total length
        p[22] = 64; // TTL
        p[23] = 6; // TCP
        p[26..30].copy_from_slice(&[10, 0, 0, 1]);
        p[30..34].copy_from_slice(&[10, 0, 0, 2]);
        p[34..36].copy_from_slice(&40000u16.to_be_bytes());
        p[36..38].copy_from_slice(&dport.to_be_bytes());
        p[46] = 0x50; // data offset 5
        p
    }

    /// Ethernet + IPv6 with hop-by-hop and routing headers, then TCP.
    fn ipv6_ext_tcp() -> Vec<u8> {
        let mut p = vec![0u8; 14 + 40 + 8 + 24 + 20];
        p[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        p[14] = 0x60;
        p[18..20].copy_from_slice(&((8 + 24 + 20) as u16).to_be_bytes()); // payload length
        p[20] = 0; // next header: hop-by-hop
        p[21] = 64;
        p[22] = 0xfe; // source fe80::1
        p[23] = 0x80;
        p[37] = 1;
        p[38] = 0xfe; // destination fe80::2
        p[39] = 0x80;
        p[53] = 2;
        // Hop-by-hop at 54: next = routing (43), length 0 (8 bytes), PadN.
        p[54] = 43;
        p[55] = 0;
        p[56] = 1;
        p[57] = 4;
        // Routing at 62: next = TCP, length 2 (24 bytes), type 0, segments left 0.
        p[62] = 6;
        p[63] = 2;
        // TCP at 86.
        p[86..88].copy_from_slice(&40000u16.to_be_bytes());
        p[88..90].copy_from_slice(&443u16.to_be_bytes());
        p[98] = 0x50;
        p
    }

    fn run(prog: &[Insn], packet: &[u8]) -> u32 {
        filter(prog, packet, packet.len() as u32)
    }

    #[test]
    fn compile_and_filter_tcp_port_443() {
        let prog = compile("tcp port 443", DLT_EN10MB, DEFAULT_SNAPLEN).unwrap();
        assert_eq!(run(&prog, &ipv4_tcp(443)), DEFAULT_SNAPLEN);
        assert_eq!(run(&prog, &ipv4_tcp(80)), 0);
        // Truncated capture (the ports are cut off), full wire length.
        let packet = ipv4_tcp(443);
        assert_eq!(filter(&prog, &packet[..36], packet.len() as u32), 0);
    }

    #[test]
    fn compile_errors_are_libpcaps_text() {
        let err = compile("tcp port", DLT_EN10MB, DEFAULT_SNAPLEN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "can't parse filter expression: syntax error"
        );
        let err = compile("ip broadcast", DLT_EN10MB, DEFAULT_SNAPLEN).unwrap_err();
        assert!(err.to_string().contains("netmask"), "{err}");
        assert!(compile("a\0b", DLT_EN10MB, DEFAULT_SNAPLEN).is_err());
        assert!(compile_with("ip broadcast", DLT_EN10MB, 100, false, 0xffff_ff00).is_ok());
    }

    #[test]
    fn linktype_names() {
        assert_eq!(linktype_from_name("EN10MB"), Some(DLT_EN10MB));
        assert_eq!(linktype_from_name("dlt_raw"), Some(DLT_RAW));
        assert_eq!(linktype_from_name("IPV4"), Some(DLT_IPV4));
        assert_eq!(linktype_from_name("IPV6"), Some(DLT_IPV6));
        assert_eq!(linktype_from_name("LINUX_SLL"), Some(DLT_LINUX_SLL));
        assert_eq!(linktype_from_name("229"), Some(229));
        assert_eq!(linktype_from_name("no such thing"), None);
        assert_eq!(linktype_from_name(""), None);
        assert_eq!(linktype_name(DLT_EN10MB).as_deref(), Some("EN10MB"));
        assert_eq!(linktype_name(DLT_LINUX_SLL).as_deref(), Some("LINUX_SLL"));
        assert_eq!(linktype_name(-5), None);
    }

    #[test]
    fn image_is_bpf_image() {
        assert_eq!(
            image(&Insn::new(LD | H | ABS, 0, 0, 12), 0),
            "(000) ldh      [12]"
        );
        assert_eq!(
            image(&Insn::new(JMP | JA, 0, 0, 0xffff_fff1), 18),
            "(018) ja       4"
        );
    }

    /// `ip6 protochain 6` loops over extension headers with a backward `ja`;
    /// libpcap's interpreter follows it.
    #[test]
    fn protochain_backward_jump() {
        let prog = compile("ip6 protochain 6", DLT_EN10MB, DEFAULT_SNAPLEN).unwrap();
        let backward: Vec<_> = prog
            .iter()
            .enumerate()
            .filter(|(_, i)| i.code == JMP | JA && (i.k as i32) < 0)
            .collect();
        // Both loop back-edges of the optimised program: `(018) ja 4` and
        // `(031) ja 4`.
        let found: Vec<_> = backward.iter().map(|(n, i)| (*n, i.k)).collect();
        assert_eq!(found, [(18, 0xffff_fff1), (31, 0xffff_ffe4)]);
        for (n, insn) in &backward {
            let line = crate::cbpf::dump::image(insn, *n);
            assert_eq!(line, format!("({n:03}) ja       4"));
            assert_eq!(line, image(insn, *n));
        }
        let packet = ipv6_ext_tcp();
        assert_eq!(run(&prog, &packet), DEFAULT_SNAPLEN);
        // Same chain ending in UDP: no match.
        let mut udp = packet.clone();
        udp[62] = 17;
        assert_eq!(run(&prog, &udp), 0);
        // Cut inside the routing header: the loop's load fails, reject.
        assert_eq!(filter(&prog, &packet[..60], packet.len() as u32), 0);
        // `tcp port 443` on the same packet does not look past extension
        // headers.
        let port = compile("ip6 and tcp port 443", DLT_EN10MB, DEFAULT_SNAPLEN).unwrap();
        assert_eq!(run(&port, &packet), 0);
    }

    fn ld_x_then(k_x: u32, alu: Insn) -> Vec<Insn> {
        vec![
            Insn::new(LD | IMM, 0, 0, 0x8000_0001),
            Insn::new(LDX | IMM, 0, 0, k_x),
            alu,
            Insn::new(RET | A, 0, 0, 0),
        ]
    }

    #[test]
    fn shifts_by_x_of_32_or_more_give_zero() {
        for x in [32, 33, 63, 64, 0xffff_ffff] {
            assert_eq!(
                run(&ld_x_then(x, Insn::new(ALU | LSH | X, 0, 0, 0)), &[]),
                0,
                "lsh {x}"
            );
            assert_eq!(
                run(&ld_x_then(x, Insn::new(ALU | RSH | X, 0, 0, 0)), &[]),
                0,
                "rsh {x}"
            );
        }
        assert_eq!(
            run(&ld_x_then(31, Insn::new(ALU | LSH | X, 0, 0, 0)), &[]),
            0x8000_0000
        );
        assert_eq!(
            run(&ld_x_then(31, Insn::new(ALU | RSH | X, 0, 0, 0)), &[]),
            1
        );
    }

    /// Shift by a constant of 32 or more is undefined in C; on x86-64 the
    /// count is masked to 5 bits (`A << 33 == A << 1`). libpcap's optimizer
    /// and the kernel reject such programs, so no real filter has one.
    #[test]
    fn shifts_by_constant_32_or_more_are_masked_on_x86() {
        let prog = |k| ld_x_then(0, Insn::new(ALU | LSH | K, 0, 0, k));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(run(&prog(33), &[]), 2);
            assert_eq!(run(&prog(32), &[]), 0x8000_0001);
        }
    }

    #[test]
    fn division_and_modulo_by_x_zero_return_zero() {
        // The whole filter returns 0 (reject), whatever follows.
        for alu in [ALU | DIV | X, ALU | MOD | X] {
            let mut prog = ld_x_then(0, Insn::new(alu, 0, 0, 0));
            prog[3] = Insn::new(RET | K, 0, 0, MATCH);
            assert_eq!(run(&prog, &[]), 0);
        }
        assert_eq!(
            run(&ld_x_then(7, Insn::new(ALU | DIV | X, 0, 0, 0)), &[]),
            0x8000_0001 / 7
        );
        assert_eq!(
            run(&ld_x_then(7, Insn::new(ALU | MOD | X, 0, 0, 0)), &[]),
            0x8000_0001 % 7
        );
        // By constant zero the interpreter would raise SIGFPE: refused.
        let prog = ld_x_then(0, Insn::new(ALU | DIV | K, 0, 0, 0));
        assert_eq!(
            try_filter(&prog, &[], 0),
            Err(UnsafeProgram::DivByZero { pc: 2 })
        );
    }

    #[test]
    fn indirect_loads_with_x_plus_k_overflowing_are_out_of_bounds() {
        let packet: Vec<u8> = (0u8..64).collect();
        let ind = |size: u16, x: u32, k: u32| {
            let prog = [
                Insn::new(LDX | IMM, 0, 0, x),
                Insn::new(LD | size | IND, 0, 0, k),
                Insn::new(RET | A, 0, 0, 0),
            ];
            run(&prog, &packet)
        };
        for size in [B, H, W] {
            // X + k wraps to 2: libpcap checks without wrapping and rejects.
            assert_eq!(ind(size, 0xffff_ffff, 3), 0);
            assert_eq!(ind(size, 3, 0xffff_ffff), 0);
            assert_eq!(ind(size, 0x8000_0000, 0x8000_0002), 0);
        }
        // In bounds: 0x02 / 0x0203 / 0x02030405 (and last byte 63).
        assert_eq!(ind(B, 1, 1), 2);
        assert_eq!(ind(H, 1, 1), 0x0203);
        assert_eq!(ind(W, 1, 1), 0x0203_0405);
        assert_eq!(ind(B, 60, 3), 63);
        assert_eq!(ind(H, 60, 3), 0);
    }

    #[test]
    fn ancillary_loads_are_out_of_bounds_in_the_interpreter() {
        let packet = ipv4_tcp(443);
        for ad in [
            ancillary::PROTOCOL,
            ancillary::PKTTYPE,
            ancillary::IFINDEX,
            ancillary::VLAN_TAG,
            ancillary::VLAN_TAG_PRESENT,
            ancillary::RANDOM,
        ] {
            for size in [B, H, W] {
                let prog = [
                    Insn::new(LD | size | ABS, 0, 0, ancillary::OFF + ad),
                    Insn::new(RET | K, 0, 0, MATCH),
                ];
                assert_eq!(run(&prog, &packet), 0, "size {size:#x} ad {ad}");
            }
        }
        // The dead-handle `inbound` program: never matches offline.
        let prog = compile("inbound", DLT_EN10MB, DEFAULT_SNAPLEN).unwrap();
        assert!(prog
            .iter()
            .any(|i| i.k == ancillary::OFF + ancillary::PKTTYPE));
        assert_eq!(run(&prog, &packet), 0);
        let prog = compile("not inbound", DLT_EN10MB, DEFAULT_SNAPLEN).unwrap();
        assert_eq!(run(&prog, &packet), 0);
    }

    #[test]
    fn len_is_the_wire_length_and_loads_stop_at_the_capture() {
        let prog = [
            Insn::new(LD | W | LEN, 0, 0, 0),
            Insn::new(RET | A, 0, 0, 0),
        ];
        assert_eq!(filter(&prog, &[0; 10], 1500), 1500);
        let prog = [
            Insn::new(LDX | W | LEN, 0, 0, 0),
            Insn::new(MISC | TXA, 0, 0, 0),
            Insn::new(RET | A, 0, 0, 0),
        ];
        assert_eq!(filter(&prog, &[0; 10], 77), 77);
        let load = |k| {
            [
                Insn::new(LD | H | ABS, 0, 0, k),
                Insn::new(RET | K, 0, 0, MATCH),
            ]
        };
        assert_eq!(filter(&load(8), &[0; 10], 1500), MATCH);
        assert_eq!(filter(&load(9), &[0; 10], 1500), 0);
        // ldxb 4*([k]&0xf) past the capture also rejects.
        let msh = [
            Insn::new(LDX | MSH | B, 0, 0, 10),
            Insn::new(RET | K, 0, 0, MATCH),
        ];
        assert_eq!(filter(&msh, &[0x45; 10], 1500), 0);
    }

    #[test]
    fn neg_and_arithmetic_wrap() {
        let prog = [
            Insn::new(LD | IMM, 0, 0, 1),
            Insn::new(ALU | NEG, 0, 0, 0),
            Insn::new(RET | A, 0, 0, 0),
        ];
        assert_eq!(run(&prog, &[]), 0xffff_ffff);
        let prog = [
            Insn::new(LD | IMM, 0, 0, 0xffff_ffff),
            Insn::new(ALU | MUL | K, 0, 0, 0xffff_ffff),
            Insn::new(RET | A, 0, 0, 0),
        ];
        assert_eq!(run(&prog, &[]), 1);
    }

    #[test]
    fn unsafe_programs_are_refused() {
        let ret = Insn::new(RET | K, 0, 0, 1);
        assert_eq!(try_filter(&[], &[], 0), Err(UnsafeProgram::Empty));
        assert_eq!(
            try_filter(&[Insn::new(LD | IMM, 0, 0, 0)], &[], 0),
            Err(UnsafeProgram::NoFinalReturn)
        );
        assert_eq!(
            try_filter(&[Insn::new(LD | H | IMM, 0, 0, 0), ret], &[], 0),
            Err(UnsafeProgram::UnknownOpcode { pc: 0, code: 0x08 })
        );
        assert_eq!(
            try_filter(&[Insn::new(ST, 0, 0, 16), ret], &[], 0),
            Err(UnsafeProgram::BadMemIndex { pc: 0, k: 16 })
        );
        assert_eq!(
            try_filter(&[Insn::new(JMP | JEQ | K, 1, 0, 0), ret], &[], 0),
            Err(UnsafeProgram::JumpOutOfRange { pc: 0 })
        );
        assert_eq!(
            try_filter(&[Insn::new(JMP | JA, 0, 0, 0xffff_fffe), ret], &[], 0),
            Err(UnsafeProgram::JumpOutOfRange { pc: 0 })
        );
        // A RET | X (0x0e) passes libpcap's bpf_validate but aborts its
        // interpreter.
        assert!(try_filter(&[Insn::new(RET | X, 0, 0, 0)], &[], 0).is_err());
        assert_eq!(try_filter(&[ret], &[], 0), Ok(1));
    }
}
