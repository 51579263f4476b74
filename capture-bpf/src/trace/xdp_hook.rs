//! `--xdp-hook`: fentry and fexit programs on an XDP program, loaded with
//! the target program's fd and its main function's BTF id.
//!
//! | program | section | sees |
//! |---|---|---|
//! | `xcap_xdp_entry` | `fentry` | the packet as the XDP program gets it |
//! | `xcap_xdp_exit` | `fexit` | the packet as it leaves, and the verdict |
//!
//! Both get the `struct xdp_buff *` the XDP program's `xdp_md *` is (the
//! verifier translates the type). Its fields and the device's are read
//! with `bpf_probe_read_kernel` at offsets from the kernel's BTF
//! (`XCAP_TRACE_OFF`); the filter is the tracing one for
//! EN10MB, in probe mode on the first buffer. `bpf_xdp_output` copies the
//! captured bytes, every buffer of a multi-buffer frame included.
//!
//! The record is a [`TraceHdr`] (see `capture_abi::trace`): `skb` holds the packet id (CPU in the top
//! 16 bits, a per-CPU sequence below: entry and exit of one run of the
//! program see the same value, as both run on one CPU with nothing in
//! between but the program; so do the components of one dispatcher run,
//! as only the first component's hook advances the sequence), `reason`
//! the verdict (exit only), `location`
//! the hooked program's address (`bpf_get_func_ip`), by which user space
//! tells hooked programs apart.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_F_CURRENT_CPU,
    btf_maps::{PerCpuArray, PerfEventArray},
    helpers::generated::{
        bpf_get_func_ip, bpf_get_smp_processor_id, bpf_ktime_get_tai_ns, bpf_xdp_output,
    },
    macros::btf_map,
};

use capture_abi::{
    trace::{
        TraceHdr, HOOK_XDP_ENTRY, HOOK_XDP_EXIT, LINK_EN10MB, OFF_DEV_IFINDEX, OFF_DEV_ND_NET,
        OFF_NET_NS_INUM, OFF_RXQ_DEV, OFF_SHINFO_FRAGS_SIZE, OFF_SHINFO_SIZE, OFF_VALID,
        OFF_XDP_DATA, OFF_XDP_DATA_END, OFF_XDP_FLAGS, OFF_XDP_FRAME_SZ, OFF_XDP_HARD_START,
        OFF_XDP_RXQ, XDP_ENTRY_PROGRAM, XDP_EXIT_PROGRAM,
    },
    COUNTER_MATCHED, COUNTER_OUTPUT_ERRORS, COUNTER_SEEN,
};

use super::super::{count, snaplen, EVENTS};
use super::{arg, off, rd_u32, rd_u64, xcap_filter_trace_l2, SCRATCH};

/// 1: the entry program advances the packet sequence; 0: the exit program
/// does (only exits are hooked). Set by the loader.
#[unsafe(no_mangle)]
static XCAP_XDP_ENTRY_COUNTS: u32 = 1;
abi_name!(
    capture_abi::trace::GLOBAL_XDP_ENTRY_COUNTS,
    stringify!(XCAP_XDP_ENTRY_COUNTS)
);

/// The code of the program packets meet first (see
/// `capture_abi::trace::GLOBAL_XDP_FIRST_CODE`). Set by the loader.
#[unsafe(no_mangle)]
static XCAP_XDP_FIRST_CODE: [u64; 2] = [0, 0];
abi_name!(
    capture_abi::trace::GLOBAL_XDP_FIRST_CODE,
    stringify!(XCAP_XDP_FIRST_CODE)
);

/// Whether the hooked program at `ip` is the one packets meet first (or
/// every program counts as first).
#[inline(always)]
fn meets_first(ip: u64) -> bool {
    let start = unsafe { core::ptr::read_volatile(&XCAP_XDP_FIRST_CODE[0]) };
    let end = unsafe { core::ptr::read_volatile(&XCAP_XDP_FIRST_CODE[1]) };
    end == 0 || (start <= ip && ip < end)
}

/// The per-CPU packet sequence behind packet ids.
#[btf_map(name = "XCAP_XDP_SEQ")]
static SEQ: PerCpuArray<u64, 1> = PerCpuArray::new();
abi_name!(capture_abi::trace::XDP_SEQ_MAP, "XCAP_XDP_SEQ");

/// `XDP_FLAGS_HAS_FRAGS` in `xdp_buff.flags`.
const XDP_FLAGS_HAS_FRAGS: u32 = 1;

/// This run's packet id; advances the sequence when `advance`.
#[inline(always)]
fn packet_id(advance: bool) -> u64 {
    let cpu = unsafe { bpf_get_smp_processor_id() } as u64;
    let Some(p) = SEQ.get_ptr_mut(0) else {
        return cpu << 48;
    };
    // Per-CPU slot, and XDP runs with preemption off: no other writer.
    let seq = unsafe {
        if advance {
            *p += 1;
        }
        *p
    };
    cpu << 48 | (seq & 0xffff_ffff_ffff)
}

/// The bytes of all buffers of the frame (`xdp_get_buff_len`).
#[inline(always)]
unsafe fn frame_len(xdp: u64, data: u64, data_end: u64) -> u64 {
    let first = data_end - data;
    let flags_off = off(OFF_XDP_FLAGS);
    let frags_off = off(OFF_SHINFO_FRAGS_SIZE);
    let missing = u32::MAX as u64;
    if flags_off == missing
        || frags_off == missing
        || rd_u32(xdp + flags_off) & XDP_FLAGS_HAS_FRAGS == 0
    {
        return first;
    }
    let hard_start = rd_u64(xdp + off(OFF_XDP_HARD_START));
    let frame_sz = rd_u32(xdp + off(OFF_XDP_FRAME_SZ)) as u64;
    let shinfo = hard_start + frame_sz - off(OFF_SHINFO_SIZE);
    first + rd_u32(shinfo + frags_off) as u64
}

#[inline(always)]
unsafe fn capture_xdp_buff(ctx: *mut c_void, hook: u16, verdict: u32, advance: bool) {
    if off(OFF_VALID) == 0 {
        return;
    }
    count(COUNTER_SEEN);
    let ip = bpf_get_func_ip(ctx);
    let id = packet_id(advance && meets_first(ip));
    let xdp_ptr = arg(ctx, 0) as *mut c_void;
    if xdp_ptr.is_null() {
        return;
    }
    let xdp = xdp_ptr as u64;
    let data = rd_u64(xdp + off(OFF_XDP_DATA));
    let data_end = rd_u64(xdp + off(OFF_XDP_DATA_END));
    if data == 0 || data_end < data {
        return;
    }
    let wirelen = frame_len(xdp, data, data_end);
    let ret = call_filter!(xcap_filter_trace_l2(ctx, data, data_end, wirelen as u32));
    if ret == 0 {
        return;
    }
    count(COUNTER_MATCHED);
    let Some(h) = SCRATCH.get_ptr_mut(0) else {
        count(COUNTER_OUTPUT_ERRORS);
        return;
    };
    let rxq = rd_u64(xdp + off(OFF_XDP_RXQ));
    let mut ifindex = 0u32;
    let mut netns = 0u32;
    if rxq != 0 {
        let dev = rd_u64(rxq + off(OFF_RXQ_DEV));
        if dev != 0 {
            ifindex = rd_u32(dev + off(OFF_DEV_IFINDEX));
            let ns_off = off(OFF_NET_NS_INUM);
            if ns_off != u32::MAX as u64 {
                let net = rd_u64(dev + off(OFF_DEV_ND_NET));
                if net != 0 {
                    netns = rd_u32(net + ns_off);
                }
            }
        }
    }
    let mut caplen = wirelen;
    if (ret as u64) < caplen {
        caplen = ret as u64;
    }
    if (snaplen() as u64) < caplen {
        caplen = snaplen() as u64;
    }
    // A perf record's size is a u16 (see capture_skb).
    let room = 65_535 - 19 - core::mem::size_of::<TraceHdr>() as u64;
    if caplen > room {
        caplen = room;
    }
    let h = &mut *h;
    h.ts_ns = bpf_ktime_get_tai_ns();
    h.skb = id;
    h.location = ip;
    h.wirelen = wirelen as u32;
    h.caplen = caplen as u32;
    h.pre_len = 0;
    h.skip = 0;
    h.ifindex = ifindex;
    h.reason = verdict;
    h.netns = netns;
    // No task: a softirq runs XDP.
    h.pid = 0;
    h.tid = 0;
    h.filter_ret = ret;
    h.cpu = bpf_get_smp_processor_id();
    h.hook = hook;
    h.link = LINK_EN10MB;
    h.flags = 0;
    h.comm = [0; 16];
    h.stack_id = -1;
    h.reserved = 0;
    let flags = BPF_F_CURRENT_CPU | ((caplen & 0xf_ffff) << 32);
    let r = bpf_xdp_output(
        xdp_ptr,
        &EVENTS as *const PerfEventArray as *mut c_void,
        flags,
        h as *mut TraceHdr as *mut c_void,
        core::mem::size_of::<TraceHdr>() as u64,
    );
    if r != 0 {
        count(COUNTER_OUTPUT_ERRORS);
    }
}

#[inline(always)]
fn entry_counts() -> bool {
    unsafe { core::ptr::read_volatile(&XCAP_XDP_ENTRY_COUNTS) != 0 }
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "fentry")]
pub fn xcap_xdp_entry(ctx: *mut c_void) -> i32 {
    unsafe { capture_xdp_buff(ctx, HOOK_XDP_ENTRY, 0, entry_counts()) };
    0
}
abi_name!(XDP_ENTRY_PROGRAM, stringify!(xcap_xdp_entry));

#[unsafe(no_mangle)]
#[unsafe(link_section = "fexit")]
pub fn xcap_xdp_exit(ctx: *mut c_void) -> i32 {
    // The XDP program's one argument, then its return value.
    unsafe {
        let verdict = arg(ctx, 1) as u32;
        capture_xdp_buff(ctx, HOOK_XDP_EXIT, verdict, !entry_counts());
    }
    0
}
abi_name!(XDP_EXIT_PROGRAM, stringify!(xcap_xdp_exit));
