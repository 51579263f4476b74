//! xcap's in-kernel capture programs.
//!
//! Each program calls a *filter stub*: a local function whose body the
//! `injector` crate replaces, in the compiled ELF object, by the translated
//! tcpdump filter (see `injector/README.md` for the contract). Until then the
//! stub's body is a placeholder that the compiler can neither inline nor fold
//! (it matches every packet).
//!
//! | program | section | stub | filter hook |
//! |---|---|---|---|
//! | `xcap_xdp` | `xdp.frags` | `xcap_filter_xdp` | `Hook::Xdp` |
//! | `xcap_tc` | `classifier` | `xcap_filter_tc` | `Hook::TcIngress` |
//! | `xcap_tc_egress` | `classifier` | `xcap_filter_tc_egress` | `Hook::TcEgress` |
//!
//! On a match (filter result != 0) a program writes one record to its
//! CPU's BPF ring buffer in [`RINGS`] (`bpf_ringbuf_reserve`): a [`Hdr`]
//! followed by the first `caplen` packet bytes, which `bpf_xdp_load_bytes` /
//! `bpf_skb_load_bytes` copy straight into the record (frags and non-linear
//! skbs included). `caplen = min(XCAP_SNAPLEN, filter result, packet
//! length)`. A ring buffer record costs a fraction of a perf sample
//! (`bpf_perf_event_output`), and one ring per CPU keeps CPUs from
//! contending for one lock. The tracing programs still use perf buffers
//! ([`EVENTS`]): `bpf_skb_output` copies from a BTF `sk_buff`.
//!
//! Every program lets every packet through: XDP returns `XDP_PASS`, TC returns
//! `TC_ACT_UNSPEC` (`TCX_NEXT`), so the programs and filters after it still
//! run. Per CPU, [`COUNTERS`] counts packets seen (unless
//! [`XCAP_COUNT_SEEN`] is 0), packets matched and failed outputs (full perf
//! buffer, no reader on that CPU, ...).
//!
//! At XDP the filter sees the first buffer of a multi-buffer packet
//! (`data..data_end`, direct access); at TC it reads the whole skb (skb
//! mode: direct access to the linear part, `bpf_skb_load_bytes` past it).
//! `wirelen` and the captured bytes always cover the whole packet.

#![no_std]
#![no_main]
// `asm!` on BPF: an empty asm statement hides a value from the optimiser
// without the stack round trip `black_box` costs (see `opaque`).
#![feature(asm_experimental_arch)]
// `atomic_xchg`: the BPF target's atomic types have no `swap` (no
// compare-and-swap in its target spec), though BPF has an exchange.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_UNSPEC},
    btf_maps::{Array, ArrayOfMaps, PerCpuArray, PerfEventArray, RingBuf},
    helpers::generated::{
        bpf_get_smp_processor_id, bpf_ktime_get_tai_ns, bpf_ringbuf_discard, bpf_ringbuf_reserve,
        bpf_ringbuf_submit, bpf_skb_load_bytes, bpf_skb_pull_data, bpf_xdp_get_buff_len,
        bpf_xdp_load_bytes,
    },
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
    EbpfContext,
};
use capture_abi::{
    live::{xdp_packet_id, Hdr, DIR_IN, DIR_OUT, HOOK_TC, HOOK_XDP},
    owner::{Owner, OWNER_OFF},
    COUNTERS_LEN, COUNTER_MATCHED, COUNTER_OUTPUT_ERRORS, COUNTER_SEEN, COUNTER_UNWOKEN,
};

/// Asserts, at compile time, that a name the kernel side must spell out
/// (a map's `name = "..."`, a global's or program's identifier) is the one
/// in `capture_abi`, which user space looks up.
macro_rules! abi_name {
    ($abi:expr, $name:expr) => {
        const _: () = assert!($crate::same_str($abi, $name));
    };
}

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `bpf_perf_event_output` is GPL-only: the kernel wants a GPL-compatible
/// license string (aya assumes "GPL" without one, libbpf does not).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Per-CPU packet counters, indexed by `COUNTER_*`. A BTF map (`.maps`),
/// so libbpf loads the object too (it refuses legacy `maps` definitions).
#[btf_map(name = "XCAP_COUNTERS")]
static COUNTERS: PerCpuArray<u64, { COUNTERS_LEN as usize }> = PerCpuArray::new();
abi_name!(capture_abi::COUNTERS_MAP, "XCAP_COUNTERS");

/// One perf buffer per CPU, for the tracing programs; user space opens them.
#[btf_map(name = "XCAP_EVENTS")]
static EVENTS: PerfEventArray = PerfEventArray::new();
abi_name!(capture_abi::EVENTS_MAP, "XCAP_EVENTS");

/// The bytes of each CPU's ring buffer as declared; the loader sizes the
/// rings (a power of two, at least a page) and the outer array (one slot
/// per possible CPU), and puts ring `n` at index `n`.
const RING_BYTES: usize = 1 << 21;

/// One BPF ring buffer per CPU (XDP and TC programs), indexed by CPU.
#[btf_map(name = "XCAP_RINGS")]
static RINGS: ArrayOfMaps<RingBuf<(), RING_BYTES>, 1> = ArrayOfMaps::new();
abi_name!(capture_abi::RINGS_MAP, "XCAP_RINGS");

/// `BPF_F_MMAPABLE`: user space maps the array and writes its flags.
const MAP_MMAPABLE: usize = 1 << 10;

/// One flag per CPU, set (non-zero in the first u64) by the reader of
/// that CPU's ring while it sleeps with no timeout: it had nothing to read
/// for a while, so it stopped polling, and the next record written must
/// wake it. A slot is a cache line, so that CPUs do not share one. The
/// loader makes the map (one slot per possible CPU) and maps it; without
/// it (another loader) the lookup fails and nothing is woken this way.
#[btf_map(name = "XCAP_ASLEEP")]
static ASLEEP: Array<[u64; 8], 1, MAP_MMAPABLE> = Array::new();
abi_name!(capture_abi::ASLEEP_MAP, "XCAP_ASLEEP");

/// Most bytes of a packet to capture; set by the loader (`.rodata`, frozen,
/// so the verifier sees a constant).
#[unsafe(no_mangle)]
static XCAP_SNAPLEN: u32 = 262_144;
abi_name!(capture_abi::GLOBAL_SNAPLEN, stringify!(XCAP_SNAPLEN));

/// TC only: when the linear part of an skb holds fewer than
/// `min(XCAP_TC_PULL, skb->len)` bytes, `bpf_skb_pull_data` makes that many
/// linear before the filter runs. 0 (the default) never pulls.
#[unsafe(no_mangle)]
static XCAP_TC_PULL: u32 = 0;
abi_name!(capture_abi::GLOBAL_TC_PULL, stringify!(XCAP_TC_PULL));

/// XDP only: 1 when the filter reads the wire length (cBPF `len`); the
/// program then asks `bpf_xdp_get_buff_len` before the filter runs. With 0
/// the filter gets the first buffer's length (it never reads it) and the
/// helper runs only for captured packets, for the header. 1 unless the
/// loader knows better.
#[unsafe(no_mangle)]
static XCAP_FILTER_READS_LEN: u32 = 1;
abi_name!(
    capture_abi::GLOBAL_FILTER_READS_LEN,
    stringify!(XCAP_FILTER_READS_LEN)
);

/// When to wake the reader of a ring: `XCAP_WAKEUP_EVENTS` > 1 wakes it
/// after that many records; otherwise `XCAP_WAKEUP_BYTES` > 0 wakes it each
/// time that many bytes have been written to its ring (a wakeup is an irq_work,
/// a self-IPI that costs microseconds in a VM, so the default batches);
/// both 0 lets the kernel wake it whenever it has caught up (`-U`).
#[unsafe(no_mangle)]
static XCAP_WAKEUP_EVENTS: u32 = 0;
abi_name!(
    capture_abi::GLOBAL_WAKEUP_EVENTS,
    stringify!(XCAP_WAKEUP_EVENTS)
);
#[unsafe(no_mangle)]
static XCAP_WAKEUP_BYTES: u32 = 0;
abi_name!(
    capture_abi::GLOBAL_WAKEUP_BYTES,
    stringify!(XCAP_WAKEUP_BYTES)
);

/// XDP and TC: 1 to count packets seen ([`COUNTER_SEEN`]), 0 not to (a
/// few ns per packet, for a figure only `xcap -v` prints).
#[unsafe(no_mangle)]
static XCAP_COUNT_SEEN: u32 = 1;
abi_name!(capture_abi::GLOBAL_COUNT_SEEN, stringify!(XCAP_COUNT_SEEN));

#[inline(always)]
fn count_seen() {
    if unsafe { core::ptr::read_volatile(&XCAP_COUNT_SEEN) } != 0 {
        count(COUNTER_SEEN);
    }
}

/// Declares a filter stub: the function the injector replaces.
///
/// It must stay a plain, non-generic, private Rust function (LOCAL symbol,
/// verified in the caller's context so packet pointers may be passed), never
/// be inlined, use all four arguments (so the caller sets r1-r4) and return
/// something the compiler cannot predict (so the caller keeps r0). The
/// placeholder body returns `wirelen` (match everything) and passes the
/// verifier, so even an object that was never spliced loads.
macro_rules! filter_stub {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[inline(never)]
        fn $name(ctx: *mut c_void, start: usize, end: usize, wirelen: u32) -> u32 {
            core::hint::black_box((ctx, start, end));
            core::hint::black_box(wirelen)
        }
    };
}

/// Calls a filter stub with every argument hidden from the optimiser.
///
/// The stub is a local function, so LLVM may propagate constants and equal
/// arguments into it across the call (interprocedural constant
/// propagation): a call passing `start = 0` and `end == wirelen` was
/// compiled to set r2 and r3 from one register and not r4 at all, which is
/// right for the placeholder body and wrong for the spliced filter. Opaque
/// arguments force the caller to load r1-r4 as the ABI says.
macro_rules! call_filter {
    ($stub:ident($ctx:expr, $start:expr, $end:expr, $wirelen:expr)) => {
        $stub(
            crate::opaque($ctx as u64) as *mut c_void,
            crate::opaque($start as u64) as usize,
            crate::opaque($end as u64) as usize,
            crate::opaque(u64::from($wirelen)) as u32,
        )
    };
}

/// `x`, as far as the optimiser knows anything: an asm statement that
/// claims to change the register holding it. Unlike `core::hint::black_box`,
/// which goes through the stack on BPF (a store and a load per value, on
/// every packet), it costs a register move to itself, which the JIT drops.
/// (An empty asm statement would cost nothing, but LLVM gives it a BTF
/// line_info record at the offset of the next instruction, and the kernel
/// refuses two records at one offset.)
#[inline(always)]
fn opaque(mut x: u64) -> u64 {
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) x, options(nomem, nostack, preserves_flags))
    };
    x
}

filter_stub!(
    /// The filter run by the XDP program (`Hook::Xdp`).
    xcap_filter_xdp
);
abi_name!(capture_abi::live::STUB_XDP, stringify!(xcap_filter_xdp));
filter_stub!(
    /// The filter run by the TC ingress program (`Hook::TcIngress`).
    xcap_filter_tc
);
abi_name!(capture_abi::live::STUB_TC, stringify!(xcap_filter_tc));
filter_stub!(
    /// The filter run by the TC egress program (`Hook::TcEgress`).
    xcap_filter_tc_egress
);
abi_name!(
    capture_abi::live::STUB_TC_EGRESS,
    stringify!(xcap_filter_tc_egress)
);

#[inline(always)]
fn count(index: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer.
        unsafe { *p += 1 };
    }
}

/// Counts one more and returns this CPU's count, this one included.
#[inline(always)]
fn count_and_read(index: u32) -> u64 {
    match COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer.
        Some(p) => unsafe {
            *p += 1;
            *p
        },
        None => 0,
    }
}

#[inline(always)]
fn snaplen() -> u32 {
    unsafe { core::ptr::read_volatile(&XCAP_SNAPLEN) }
}

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
/// A ring buffer record's own header (`BPF_RINGBUF_HDR_SZ`).
const RINGBUF_HDR_BYTES: u64 = 8;
const HDR_BYTES: u32 = core::mem::size_of::<Hdr>() as u32;

/// Writes `hdr` and `hdr.caplen` packet bytes, which `copy(dst, len)`
/// copies from the packet's start, to this CPU's ring.
#[inline(always)]
fn output(hdr: &Hdr, copy: impl Fn(*mut c_void, u32) -> i64) {
    let Some(ring) = RINGS.get(hdr.cpu) else {
        count(COUNTER_OUTPUT_ERRORS);
        return;
    };
    let ring = ring as *const RingBuf<(), RING_BYTES> as *mut c_void;
    let n = hdr.caplen;
    let cap = size_class(n);
    let size = u64::from(HDR_BYTES) + cap;
    let rec = unsafe { bpf_ringbuf_reserve(ring, size, 0) } as *mut u8;
    if rec.is_null() {
        count(COUNTER_OUTPUT_ERRORS);
        return;
    }
    // Records are 8-byte aligned, like `Hdr`.
    unsafe { core::ptr::write(rec as *mut Hdr, core::ptr::read(hdr)) };
    // The bounds again, on a value the optimiser cannot reason about: it
    // would drop them as implied by the class, and the verifier wants them
    // on the register passed. One unsigned test of `n - 1` gives both: a
    // test of `n == 0` would not do, since verifiers before 6.7 learn
    // nothing from `n != 0` and refuse a length that may be 0.
    let below = opaque(u64::from(n).wrapping_sub(1));
    if below >= cap
        || copy(
            unsafe { rec.add(HDR_BYTES as usize) } as *mut c_void,
            (below + 1) as u32,
        ) != 0
    {
        unsafe { bpf_ringbuf_discard(rec as *mut c_void, BPF_RB_NO_WAKEUP) };
        count(COUNTER_OUTPUT_ERRORS);
        return;
    }
    unsafe { bpf_ringbuf_submit(rec as *mut c_void, wakeup_flags(size + RINGBUF_HDR_BYTES)) };
    wake_if_asleep(ring, hdr.cpu);
}

/// Wakes the reader of `ring` if it sleeps without a timeout ([`ASLEEP`]).
/// Read after the submit, whose commit is a full barrier (`xchg`): the
/// reader sets its flag, then (after a full barrier too) looks for records
/// before sleeping, so either it sees this record or this load sees its
/// flag. The swap makes one program the waker; the wakeup itself goes
/// through an empty record, discarded, since a record's submit is the only
/// way to wake a ring's reader.
#[inline(always)]
fn wake_if_asleep(ring: *mut c_void, cpu: u32) {
    let Some(slot) = ASLEEP.get_ptr_mut(cpu) else {
        return;
    };
    let flag = slot as *mut u64;
    if unsafe { core::ptr::read_volatile(flag) } == 0 {
        return;
    }
    core::hint::cold_path();
    // SAFETY: a map value, 8-byte aligned, shared with user space.
    let was = unsafe {
        core::intrinsics::atomic_xchg::<u64, { core::intrinsics::AtomicOrdering::SeqCst }>(flag, 0)
    };
    if was == 0 {
        return;
    }
    let rec = unsafe { bpf_ringbuf_reserve(ring, 0, 0) };
    if !rec.is_null() {
        unsafe { bpf_ringbuf_discard(rec, BPF_RB_FORCE_WAKEUP) };
    }
}

/// The packet bytes a record holds for `n` bytes: the smallest of a few
/// classes (above 1 KiB each at most 1.5 times the last, so a record wastes
/// less than a third of itself). bpf_ringbuf_reserve wants a size the
/// verifier knows; each class is a constant on its own path (opaque to the
/// optimiser, so that it cannot fold the chain into a table lookup, which
/// the verifier could not follow), and the frozen snap length prunes the
/// classes above it.
#[inline(always)]
fn size_class(n: u32) -> u64 {
    macro_rules! classes {
        ($($c:literal),+; $last:literal) => {
            $(if n <= $c { $c } else)+ { $last }
        };
    }
    opaque(classes!(
        128, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144, 9216, 12288, 16384, 24576, 32768,
        49152, 65536, 98304, 131072, 196608; 262144
    ))
}

/// The submit flags: see `XCAP_WAKEUP_EVENTS`. Both modes count, per
/// CPU, what was written since the last forced wakeup (records or bytes):
/// a per-CPU counter costs a few instructions where asking the ring for
/// its unread bytes (`bpf_ringbuf_query`) is one more helper call per
/// captured packet.
#[inline(always)]
fn wakeup_flags(record_bytes: u64) -> u64 {
    let events = unsafe { core::ptr::read_volatile(&XCAP_WAKEUP_EVENTS) };
    let (step, mark) = if events > 1 {
        (1, u64::from(events))
    } else {
        let bytes = unsafe { core::ptr::read_volatile(&XCAP_WAKEUP_BYTES) };
        if bytes == 0 {
            return 0;
        }
        (record_bytes, u64::from(bytes))
    };
    let Some(p) = COUNTERS.get_ptr_mut(COUNTER_UNWOKEN) else {
        return 0;
    };
    // Per-CPU slot: no other writer.
    let unwoken = unsafe { *p } + step;
    if unwoken >= mark {
        unsafe { *p = 0 };
        BPF_RB_FORCE_WAKEUP
    } else {
        unsafe { *p = unwoken };
        BPF_RB_NO_WAKEUP
    }
}

#[inline(always)]
fn min3(a: u32, b: u32, c: u32) -> u32 {
    let m = if a < b { a } else { b };
    if m < c {
        m
    } else {
        c
    }
}

abi_name!(capture_abi::live::PROG_XDP, stringify!(xcap_xdp));
#[xdp(frags)]
pub fn xcap_xdp(ctx: XdpContext) -> u32 {
    count_seen();
    let start = ctx.data();
    let end = ctx.data_end();
    // All buffers of a multi-buffer packet; a helper call, so only when the
    // filter reads it. (u64 throughout: the filter reads the low 32 bits,
    // and a u32 here would cost a zero-extension on every packet.)
    let filter_len = if unsafe { core::ptr::read_volatile(&XCAP_FILTER_READS_LEN) } != 0 {
        unsafe { bpf_xdp_get_buff_len(ctx.ctx) }
    } else {
        (end - start) as u64
    };
    let ret = call_filter!(xcap_filter_xdp(ctx.as_ptr(), start, end, filter_len));
    if ret != 0 {
        // Out of line: the path every packet takes stays a few contiguous
        // cache lines, and nothing but the context lives across the filter.
        core::hint::cold_path();
        capture_xdp(&ctx, ret);
    }
    xdp_action::XDP_PASS
}

/// Writes the record of a packet the XDP filter matched (`ret`: the
/// filter's result).
#[inline(always)]
fn capture_xdp(ctx: &XdpContext, ret: u32) {
    // No skb yet: the packet's id is its number among this CPU's matches.
    let matched = count_and_read(COUNTER_MATCHED);
    let cpu = unsafe { bpf_get_smp_processor_id() };
    // Asked again rather than kept from before the filter: one helper call
    // per captured packet instead of a stack slot on every packet.
    let wirelen = unsafe { bpf_xdp_get_buff_len(ctx.ctx) as u32 };
    let md = ctx.ctx;
    // Not constants: LLVM zeroes a run of constant zero fields with a
    // call to a byte-loop `memset` subprogram (6 iterations and a
    // bpf2bpf call for every captured packet).
    let zero = opaque(0);
    let hdr = Hdr {
        ts_ns: unsafe { bpf_ktime_get_tai_ns() },
        ifindex: unsafe { (*md).ingress_ifindex },
        wirelen,
        caplen: min3(snaplen(), ret, wirelen),
        cpu,
        queue: unsafe { (*md).rx_queue_index },
        filter_ret: ret,
        hook: HOOK_XDP,
        direction: DIR_IN,
        vlan_present: zero as u8,
        pkt_type: zero as u8,
        vlan_tci: zero as u16,
        vlan_proto: zero as u16,
        owner: Owner {
            pid: zero as u32,
            tid: zero as u32,
            cgroup: zero,
            netns: zero,
            comm: [zero as u8; 16],
        },
        owner_state: OWNER_OFF,
        _pad: [zero as u8; 7],
        packet_id: xdp_packet_id(cpu, matched),
    };
    output(&hdr, |dst, len| unsafe {
        bpf_xdp_load_bytes(md, 0, dst, len)
    });
}

#[inline(always)]
fn tc(ctx: &TcContext, direction: u8) -> i32 {
    count_seen();
    let skb = ctx.skb.skb;
    let wirelen = ctx.len();
    let pull = unsafe { core::ptr::read_volatile(&XCAP_TC_PULL) };
    if pull != 0 {
        let want = if pull < wirelen { pull } else { wirelen };
        if ctx.data_end() - ctx.data() < want as usize {
            // Packet pointers are re-read below.
            unsafe { bpf_skb_pull_data(skb, want) };
        }
    }
    // The TC filters are translated in skb mode: start and end are offsets
    // into the skb, which the filter reads directly in its linear part and
    // with bpf_skb_load_bytes past it (senders using PACKET_MMAP or
    // zero-copy leave most of the packet in page fragments).
    let start = 0usize;
    let end = wirelen as usize;
    let ret = if direction == DIR_IN {
        call_filter!(xcap_filter_tc(ctx.as_ptr(), start, end, wirelen))
    } else {
        call_filter!(xcap_filter_tc_egress(ctx.as_ptr(), start, end, wirelen))
    };
    if ret != 0 {
        core::hint::cold_path();
        capture_tc(ctx, direction, ret);
    }
    TC_ACT_UNSPEC
}

/// Writes the record of a packet the TC filter matched (`ret`: the
/// filter's result), unless a process filter leaves it out.
///
/// Out of line, and the record in a function of its own: the kernel allows
/// 512 bytes of stack along any chain of calls, the program's own frame
/// holds the inlined filter's (up to 240 bytes), and the header (96 bytes,
/// with the compiler's spills around its helper calls more than twice
/// that) and the socket lookup's tuple must not add up on one chain.
#[inline(never)]
fn capture_tc(ctx: &TcContext, direction: u8, ret: u32) {
    let zero = opaque(0);
    let mut who = Owner {
        pid: zero as u32,
        tid: zero as u32,
        cgroup: zero,
        netns: zero,
        comm: [zero as u8; 16],
    };
    let state = owner::attribute(ctx.skb.skb, direction == DIR_IN, &mut who);
    if !owner::selected(state, &who) {
        return;
    }
    count(COUNTER_MATCHED);
    write_tc_record(ctx, direction, ret, &who, state);
}

#[inline(never)]
fn write_tc_record(ctx: &TcContext, direction: u8, ret: u32, who: &Owner, state: u8) {
    let skb = ctx.skb.skb;
    let wirelen = ctx.len();
    let zero = opaque(0);
    let hdr = unsafe {
        Hdr {
            ts_ns: bpf_ktime_get_tai_ns(),
            ifindex: (*skb).ifindex,
            wirelen,
            caplen: min3(snaplen(), ret, wirelen),
            cpu: bpf_get_smp_processor_id(),
            queue: (*skb).queue_mapping,
            filter_ret: ret,
            hook: HOOK_TC,
            direction,
            vlan_present: (*skb).vlan_present as u8,
            pkt_type: (*skb).pkt_type as u8,
            vlan_tci: (*skb).vlan_tci as u16,
            vlan_proto: (*skb).vlan_proto as u16,
            owner: *who,
            owner_state: state,
            _pad: [zero as u8; 7],
            // The context is the kernel's `struct sk_buff *` (the
            // verifier rewrites `__sk_buff` field reads into it): the
            // address the tracing hooks record. A pointer may be written
            // to the ring because xcap's loader is privileged
            // (`allow_ptr_leaks`), which every kernel since 5.8 allows
            // without `bpf_cast_to_kern_ctx`.
            packet_id: skb as u64,
        }
    };
    output(&hdr, |dst, len| unsafe {
        bpf_skb_load_bytes(skb as *const c_void, 0, dst, len)
    });
}

abi_name!(capture_abi::live::PROG_TC, stringify!(xcap_tc));
/// TC ingress (attach with TCX ingress, or clsact ingress).
#[classifier]
pub fn xcap_tc(ctx: TcContext) -> i32 {
    tc(&ctx, DIR_IN)
}

abi_name!(
    capture_abi::live::PROG_TC_EGRESS,
    stringify!(xcap_tc_egress)
);
/// TC egress (attach with TCX egress, or clsact egress).
#[classifier]
pub fn xcap_tc_egress(ctx: TcContext) -> i32 {
    tc(&ctx, DIR_OUT)
}

/// Tracing hooks (tp_btf, fentry): issue 5.
mod trace;

/// Who sent each packet (attribution and process filters): issue 20.
mod owner;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
