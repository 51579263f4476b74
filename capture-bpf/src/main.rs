//! xcap's in-kernel capture programs.
//!
//! Each program calls a *filter stub*: a local function whose body the
//! `injector` crate replaces, in the compiled ELF object, by the translated
//! tcpdump filter (see `injector/README.md` for the contract). Until then the
//! stub's body is a placeholder that the compiler can neither inline nor fold.
//!
//! For now the programs only count: per CPU, how many packets they saw and how
//! many the filter matched (return value != 0). Both let every packet pass.

#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_OK},
    btf_maps::PerCpuArray,
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
    EbpfContext,
};

/// Indices into [`COUNTERS`].
pub const COUNTER_SEEN: u32 = 0;
pub const COUNTER_MATCHED: u32 = 1;
pub const COUNTERS_LEN: u32 = 2;

/// Per-CPU packet counters, indexed by `COUNTER_*`. A BTF map (`.maps`),
/// so libbpf loads the object too (it refuses legacy `maps` definitions).
#[btf_map(name = "XCAP_COUNTERS")]
static COUNTERS: PerCpuArray<u64, { COUNTERS_LEN as usize }> = PerCpuArray::new();

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

filter_stub!(
    /// The filter run by the XDP program (`Hook::Xdp`).
    xcap_filter_xdp
);
filter_stub!(
    /// The filter run by the TC program (`Hook::TcIngress`/`TcEgress`).
    xcap_filter_tc
);

#[inline(always)]
fn count(index: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer.
        unsafe { *p += 1 };
    }
}

#[xdp]
pub fn xcap_xdp(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    let end = ctx.data_end();
    count(COUNTER_SEEN);
    if xcap_filter_xdp(ctx.as_ptr(), start, end, (end - start) as u32) != 0 {
        count(COUNTER_MATCHED);
    }
    xdp_action::XDP_PASS
}

#[classifier]
pub fn xcap_tc(ctx: TcContext) -> i32 {
    let start = ctx.data();
    let end = ctx.data_end();
    count(COUNTER_SEEN);
    if xcap_filter_tc(ctx.as_ptr(), start, end, ctx.len()) != 0 {
        count(COUNTER_MATCHED);
    }
    TC_ACT_OK
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
