//! Tracing capture: `tp_btf` tracepoints and `fentry` programs that see a
//! `struct sk_buff *` (issue 5).
//!
//! | program | section | skb argument | extra |
//! |---|---|---|---|
//! | `xcap_tp_kfree_skb` | `tp_btf/kfree_skb` | 0 | location (1), drop reason (2) |
//! | `xcap_tp_consume_skb` | `tp_btf/consume_skb` | 0 | location (1, Linux 6.3+) |
//! | `xcap_tp_netif_receive_skb` | `tp_btf/netif_receive_skb` | 0 | |
//! | `xcap_tp_net_dev_queue` | `tp_btf/net_dev_queue` | 0 | |
//! | `xcap_tp_net_dev_xmit` | `tp_btf/net_dev_xmit` | 0 | return code (1) |
//! | `xcap_fentry_argN` (N = 0..5) | `fentry` | N | attach target chosen at load |
//! | `xcap_fexit_argN` (N = 0..5) | `fexit` | N | return value; at most 256 bytes, probe reads only |
//!
//! aya-ebpf has no kernel type definitions, so the `sk_buff`, `net_device`
//! and `net` field offsets come from the kernel's BTF, resolved by user space
//! and written to [`XCAP_TRACE_OFF`] (`.rodata`, frozen: the verifier sees
//! constants). Every field is read with `bpf_probe_read_kernel`.
//!
//! The packet starts at the MAC header when the skb has one
//! (`mac_header != ~0`, `network_header > mac_header`, device type Ethernet
//! or loopback): link type EN10MB, filter stub `xcap_filter_trace_l2`.
//! Otherwise it starts at the network header: link type RAW, stub
//! `xcap_filter_trace_l3`. The filters run in probe mode on the linear part
//! (`start .. data + skb_headlen`).
//!
//! Output: `bpf_skb_output(skb, &XCAP_EVENTS, BPF_F_CURRENT_CPU | n << 32,
//! hdr, sizeof hdr)` where `hdr` is a [`TraceHdr`] in a per-CPU scratch map.
//! `bpf_skb_output` copies from `skb->data` (frags included), so the bytes
//! between the packet start and `skb->data` (the MAC header, or the IP and
//! transport headers already pulled) travel in `hdr.pre`, at most
//! [`MAX_PRE`] bytes; user space joins the two.
//!
//! Stacks (`--stack`): when [`XCAP_TRACE_STACK`] is non-zero, each matched
//! packet's kernel stack goes to [`STACKS`] (`bpf_get_stackid(ctx, &STACKS,
//! 0)`) and its id, or the negative error, to `TraceHdr::stack_id`; user
//! space reads the frames from the map by id. The map has one entry in the
//! object; the tracing loader sizes it when stacks are asked for.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_F_CURRENT_CPU,
    btf_maps::{PerCpuArray, PerfEventArray, StackTrace},
    helpers::generated::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_get_stackid,
        bpf_get_func_ret, bpf_ktime_get_tai_ns, bpf_perf_event_output, bpf_probe_read_kernel,
        bpf_skb_output,
    },
    macros::btf_map,
};

use capture_abi::{
    trace::{
        TraceHdr, HOOK_CONSUME_SKB, HOOK_FENTRY, HOOK_FEXIT, HOOK_KFREE_SKB, HOOK_NETIF_RECEIVE_SKB,
        HOOK_NET_DEV_QUEUE, HOOK_NET_DEV_XMIT, LINK_EN10MB, LINK_RAW, MAX_PRE,
        OFF_CONSUME_SKB_ARGS, OFF_DEV_IFINDEX, OFF_DEV_ND_NET, OFF_DEV_TYPE, OFF_KFREE_SKB_ARGS,
        OFF_LEN, OFF_NET_NS_INUM, OFF_SKB_DATA, OFF_SKB_DATA_LEN, OFF_SKB_DEV, OFF_SKB_HEAD,
        OFF_SKB_LEN, OFF_SKB_MAC_HEADER, OFF_SKB_NETWORK_HEADER, OFF_VALID,
    },
    COUNTER_MATCHED, COUNTER_OUTPUT_ERRORS, COUNTER_SEEN,
};

use super::{count, owner, snaplen, EVENTS};

/// Field offsets (see `OFF_*`); `u32::MAX` marks a field this kernel lacks.
#[unsafe(no_mangle)]
static XCAP_TRACE_OFF: [u32; OFF_LEN] = [0; OFF_LEN];
abi_name!(
    capture_abi::trace::GLOBAL_OFFSETS,
    stringify!(XCAP_TRACE_OFF)
);

/// Non-zero: record each matched packet's kernel stack in [`STACKS`]
/// (`.rodata`, set by the loader).
#[unsafe(no_mangle)]
static XCAP_TRACE_STACK: u32 = 0;
abi_name!(
    capture_abi::trace::GLOBAL_STACK,
    stringify!(XCAP_TRACE_STACK)
);

/// Kernel stacks by id (`bpf_get_stackid`). One entry here: the loader sets
/// `max_entries` when `XCAP_TRACE_STACK` is on, so other loads of the object
/// stay small.
#[btf_map(name = "XCAP_TRACE_STACKS")]
static STACKS: StackTrace<1> = StackTrace::new();
abi_name!(capture_abi::trace::STACKS_MAP, "XCAP_TRACE_STACKS");

/// One header per CPU: too big for the BPF stack next to the filter's.
#[btf_map(name = "XCAP_TRACE_SCRATCH")]
static SCRATCH: PerCpuArray<TraceHdr, 1> = PerCpuArray::new();

filter_stub!(
    /// The tracing filter on packets with a MAC header (DLT_EN10MB, probe
    /// mode); `--xdp-hook`'s programs run it too.
    xcap_filter_trace_l2
);
abi_name!(
    capture_abi::trace::STUB_L2,
    stringify!(xcap_filter_trace_l2)
);
filter_stub!(
    /// The tracing filter on packets from the network header (DLT_RAW, probe mode).
    xcap_filter_trace_l3
);
abi_name!(
    capture_abi::trace::STUB_L3,
    stringify!(xcap_filter_trace_l3)
);

#[inline(always)]
fn off(i: usize) -> u64 {
    unsafe { core::ptr::read_volatile(&XCAP_TRACE_OFF[i]) as u64 }
}

#[inline(always)]
unsafe fn rd_u64(addr: u64) -> u64 {
    let mut v: u64 = 0;
    bpf_probe_read_kernel(&mut v as *mut u64 as *mut c_void, 8, addr as *const c_void);
    v
}

#[inline(always)]
unsafe fn rd_u32(addr: u64) -> u32 {
    let mut v: u32 = 0;
    bpf_probe_read_kernel(&mut v as *mut u32 as *mut c_void, 4, addr as *const c_void);
    v
}

#[inline(always)]
unsafe fn rd_u16(addr: u64) -> u16 {
    let mut v: u16 = 0;
    bpf_probe_read_kernel(&mut v as *mut u16 as *mut c_void, 2, addr as *const c_void);
    v
}

/// Argument `n` of a tracing program (the context is an array of u64).
#[inline(always)]
unsafe fn arg(ctx: *mut c_void, n: usize) -> u64 {
    core::ptr::read_volatile((ctx as *const u64).add(n))
}

#[inline(always)]
unsafe fn capture_skb(
    ctx: *mut c_void,
    skb_ptr: *mut c_void,
    hook: u16,
    location: u64,
    reason: u32,
    after: bool,
    egress: bool,
) {
    if off(OFF_VALID) == 0 {
        return;
    }
    count(COUNTER_SEEN);
    if skb_ptr.is_null() {
        return;
    }
    let skb = skb_ptr as u64;
    let head = rd_u64(skb + off(OFF_SKB_HEAD));
    let data = rd_u64(skb + off(OFF_SKB_DATA));
    let len = rd_u32(skb + off(OFF_SKB_LEN));
    let data_len = rd_u32(skb + off(OFF_SKB_DATA_LEN));
    let mh = rd_u16(skb + off(OFF_SKB_MAC_HEADER)) as u64;
    let nh = rd_u16(skb + off(OFF_SKB_NETWORK_HEADER)) as u64;
    let dev = rd_u64(skb + off(OFF_SKB_DEV));
    if head == 0 || data < head {
        return;
    }
    let headlen = if data_len <= len { len - data_len } else { 0 };
    let end = data + headlen as u64;
    let mut ifindex = 0u32;
    let mut dev_type = 0u16;
    let mut netns = 0u32;
    if dev != 0 {
        ifindex = rd_u32(dev + off(OFF_DEV_IFINDEX));
        dev_type = rd_u16(dev + off(OFF_DEV_TYPE));
        let ns_off = off(OFF_NET_NS_INUM);
        if ns_off != u32::MAX as u64 {
            let net = rd_u64(dev + off(OFF_DEV_ND_NET));
            if net != 0 {
                netns = rd_u32(net + ns_off);
            }
        }
    }
    // ARPHRD_ETHER, ARPHRD_LOOPBACK: an Ethernet header.
    let l2 = mh != 0xffff && nh > mh && nh - mh <= 64 && (dev_type == 1 || dev_type == 772);
    let mut start = if l2 { head + mh } else { head + nh };
    if start > end {
        if l2 {
            return;
        }
        start = data;
    }
    let (pre, skip) = if start <= data {
        (data - start, 0)
    } else {
        (0, start - data)
    };
    if pre > MAX_PRE as u64 {
        return;
    }
    let wirelen = (len as u64 + pre - skip) as u32;
    let ret = if l2 {
        call_filter!(xcap_filter_trace_l2(
            ctx,
            start as usize,
            end as usize,
            wirelen
        ))
    } else {
        call_filter!(xcap_filter_trace_l3(
            ctx,
            start as usize,
            end as usize,
            wirelen
        ))
    };
    if ret == 0 {
        return;
    }
    let Some(h) = SCRATCH.get_ptr_mut(0) else {
        count(COUNTER_OUTPUT_ERRORS);
        return;
    };
    // Who: written straight into the header (no room on the stack next
    // to the filter's); a packet of a process not selected is not matched.
    let state = owner::attribute_traced(skb_ptr, egress, &mut (*h).owner);
    if !owner::selected(state, &(*h).owner) {
        return;
    }
    count(COUNTER_MATCHED);
    let snap = snaplen();
    let mut caplen = if ret < wirelen { ret } else { wirelen };
    if snap < caplen {
        caplen = snap;
    }
    // A perf record's size is a u16, and the kernel cuts a sample past it:
    // the header, the skipped bytes and the packet must fit (8 bytes of
    // record header, 4 of raw size, up to 7 of padding).
    let room = (65_535 - 19 - core::mem::size_of::<TraceHdr>() as u64).saturating_sub(skip);
    if caplen as u64 > room {
        caplen = room as u32;
    }
    // After the function (fexit) the skb may be freed or handed on: only
    // probe reads touch it then, at most MAX_PRE bytes of its linear part.
    if after {
        let linear = end - start;
        if caplen as u64 > linear {
            caplen = linear as u32;
        }
        if caplen as usize > MAX_PRE {
            caplen = MAX_PRE as u32;
        }
    }
    let pre_used = if after || (caplen as u64) < pre {
        caplen as u64
    } else {
        pre
    };
    let h = &mut *h;
    h.ts_ns = bpf_ktime_get_tai_ns();
    h.skb = skb;
    h.location = location;
    h.wirelen = wirelen;
    h.caplen = caplen;
    h.pre_len = pre_used as u32;
    h.skip = skip as u32;
    h.ifindex = ifindex;
    h.reason = reason;
    h.netns = netns;
    let pt = bpf_get_current_pid_tgid();
    h.pid = (pt >> 32) as u32;
    h.tid = pt as u32;
    h.filter_ret = ret;
    h.cpu = bpf_get_smp_processor_id();
    h.hook = hook;
    h.link = if l2 { LINK_EN10MB } else { LINK_RAW };
    h.flags = 0;
    bpf_get_current_comm(h.comm.as_mut_ptr() as *mut c_void, 16);
    // `n - 1` below MAX_PRE, tested on a value the optimiser cannot see
    // through: it drops a bound it can prove, and verifiers before 6.7 learn
    // nothing from `n != 0`.
    let below = super::opaque(pre_used.wrapping_sub(1));
    if below < MAX_PRE as u64 {
        bpf_probe_read_kernel(
            h.pre.as_mut_ptr() as *mut c_void,
            (below + 1) as u32,
            start as *const c_void,
        );
    }
    h.owner_state = state;
    h._owner_pad = [0; 7];
    h.stack_id = if core::ptr::read_volatile(&XCAP_TRACE_STACK) != 0 {
        bpf_get_stackid(ctx, &STACKS as *const _ as *mut c_void, 0) as i32
    } else {
        -1
    };
    h.reserved = 0;
    let r = if after {
        h.skip = 0;
        bpf_perf_event_output(
            ctx,
            &EVENTS as *const PerfEventArray as *mut c_void,
            BPF_F_CURRENT_CPU,
            h as *mut TraceHdr as *mut c_void,
            core::mem::size_of::<TraceHdr>() as u64,
        )
    } else {
        let rest = (caplen as u64 - pre_used + skip) & 0xf_ffff;
        let flags = BPF_F_CURRENT_CPU | (rest << 32);
        bpf_skb_output(
            skb_ptr,
            &EVENTS as *const PerfEventArray as *mut c_void,
            flags,
            h as *mut TraceHdr as *mut c_void,
            core::mem::size_of::<TraceHdr>() as u64,
        )
    };
    if r != 0 {
        count(COUNTER_OUTPUT_ERRORS);
    }
}

abi_name!(
    capture_abi::trace::TRACEPOINTS[0].program,
    stringify!(xcap_tp_kfree_skb)
);
abi_name!(capture_abi::trace::TRACEPOINTS[0].name, "kfree_skb");
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/kfree_skb")]
pub fn xcap_tp_kfree_skb(ctx: *mut c_void) -> i32 {
    unsafe {
        let skb = arg(ctx, 0) as *mut c_void;
        let args = off(OFF_KFREE_SKB_ARGS);
        let location = if args > 1 { arg(ctx, 1) } else { 0 };
        let reason = if args > 2 { arg(ctx, 2) as u32 } else { 0 };
        capture_skb(ctx, skb, HOOK_KFREE_SKB, location, reason, false, false);
    }
    0
}

abi_name!(
    capture_abi::trace::TRACEPOINTS[1].program,
    stringify!(xcap_tp_consume_skb)
);
abi_name!(capture_abi::trace::TRACEPOINTS[1].name, "consume_skb");
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/consume_skb")]
pub fn xcap_tp_consume_skb(ctx: *mut c_void) -> i32 {
    unsafe {
        let skb = arg(ctx, 0) as *mut c_void;
        let location = if off(OFF_CONSUME_SKB_ARGS) > 1 {
            arg(ctx, 1)
        } else {
            0
        };
        capture_skb(ctx, skb, HOOK_CONSUME_SKB, location, 0, false, false);
    }
    0
}

abi_name!(
    capture_abi::trace::TRACEPOINTS[2].program,
    stringify!(xcap_tp_netif_receive_skb)
);
abi_name!(capture_abi::trace::TRACEPOINTS[2].name, "netif_receive_skb");
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/netif_receive_skb")]
pub fn xcap_tp_netif_receive_skb(ctx: *mut c_void) -> i32 {
    unsafe {
        let skb = arg(ctx, 0) as *mut c_void;
        capture_skb(ctx, skb, HOOK_NETIF_RECEIVE_SKB, 0, 0, false, false);
    }
    0
}

abi_name!(
    capture_abi::trace::TRACEPOINTS[3].program,
    stringify!(xcap_tp_net_dev_queue)
);
abi_name!(capture_abi::trace::TRACEPOINTS[3].name, "net_dev_queue");
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/net_dev_queue")]
pub fn xcap_tp_net_dev_queue(ctx: *mut c_void) -> i32 {
    unsafe {
        let skb = arg(ctx, 0) as *mut c_void;
        capture_skb(ctx, skb, HOOK_NET_DEV_QUEUE, 0, 0, false, true);
    }
    0
}

abi_name!(
    capture_abi::trace::TRACEPOINTS[4].program,
    stringify!(xcap_tp_net_dev_xmit)
);
abi_name!(capture_abi::trace::TRACEPOINTS[4].name, "net_dev_xmit");
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/net_dev_xmit")]
pub fn xcap_tp_net_dev_xmit(ctx: *mut c_void) -> i32 {
    unsafe {
        let skb = arg(ctx, 0) as *mut c_void;
        capture_skb(ctx, skb, HOOK_NET_DEV_XMIT, 0, arg(ctx, 1) as u32, false, true);
    }
    0
}

/// One fentry program per argument position: the verifier wants a constant
/// offset into the context. The attach target is given at load time.
macro_rules! fentry_arg {
    ($name:ident, $n:expr) => {
        #[unsafe(no_mangle)]
        #[unsafe(link_section = "fentry")]
        pub fn $name(ctx: *mut c_void) -> i32 {
            unsafe {
                let skb = arg(ctx, $n) as *mut c_void;
                capture_skb(ctx, skb, HOOK_FENTRY, 0, 0, false, false);
            }
            0
        }
    };
}

fentry_arg!(xcap_fentry_arg0, 0);
fentry_arg!(xcap_fentry_arg1, 1);
fentry_arg!(xcap_fentry_arg2, 2);
fentry_arg!(xcap_fentry_arg3, 3);
fentry_arg!(xcap_fentry_arg4, 4);
fentry_arg!(xcap_fentry_arg5, 5);
const _: () = assert!(capture_abi::trace::MAX_FENTRY_ARG == 5);
abi_name!(capture_abi::trace::FENTRY_PROGRAM_PREFIX, "xcap_fentry_arg");

/// fexit: the packet after the function ran, with its return value
/// (`bpf_get_func_ret`) in `TraceHdr::reason`; one program per argument
/// position, as for fentry.
macro_rules! fexit_arg {
    ($name:ident, $n:expr) => {
        #[unsafe(no_mangle)]
        #[unsafe(link_section = "fexit")]
        pub fn $name(ctx: *mut c_void) -> i32 {
            unsafe {
                let skb = arg(ctx, $n) as *mut c_void;
                let mut ret: u64 = 0;
                bpf_get_func_ret(ctx, &mut ret);
                capture_skb(ctx, skb, HOOK_FEXIT, 0, ret as u32, true, false);
            }
            0
        }
    };
}

fexit_arg!(xcap_fexit_arg0, 0);
fexit_arg!(xcap_fexit_arg1, 1);
fexit_arg!(xcap_fexit_arg2, 2);
fexit_arg!(xcap_fexit_arg3, 3);
fexit_arg!(xcap_fexit_arg4, 4);
fexit_arg!(xcap_fexit_arg5, 5);
abi_name!(capture_abi::trace::FEXIT_PROGRAM_PREFIX, "xcap_fexit_arg");

/// fentry and fexit on XDP programs (`--xdp-hook`).
mod xdp_hook;
