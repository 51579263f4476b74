//! The tracing programs: `tp_btf` tracepoints and `fentry` programs that
//! see a `struct sk_buff *`, and the perf sample each sends to
//! [`super::EVENTS_MAP`]: a [`TraceHdr`], then the bytes `bpf_skb_output`
//! copies from `skb->data`.
//!
//! The programs have no kernel type definitions: user space finds the
//! `sk_buff`, `net_device` and `net` field offsets in the kernel's BTF and
//! writes them to [`GLOBAL_OFFSETS`], indexed by `OFF_*`.

/// A tracepoint program.
#[derive(Clone, Copy, Debug)]
pub struct Tracepoint {
    /// The tracepoint (`tp_btf/<name>`).
    pub name: &'static str,
    /// Its category in tracefs (`skb:kfree_skb`).
    pub category: &'static str,
    /// The program that attaches to it.
    pub program: &'static str,
    /// Its [`TraceHdr::hook`].
    pub hook: u16,
}

pub const HOOK_KFREE_SKB: u16 = 16;
pub const HOOK_CONSUME_SKB: u16 = 17;
pub const HOOK_NETIF_RECEIVE_SKB: u16 = 18;
pub const HOOK_NET_DEV_QUEUE: u16 = 19;
pub const HOOK_NET_DEV_XMIT: u16 = 20;
/// Every `fentry` program (`xcap_fentry_argN`).
pub const HOOK_FENTRY: u16 = 32;
/// Every `fexit` program (`xcap_fexit_argN`): `TraceHdr::reason` holds the
/// function's return value (its low 32 bits).
pub const HOOK_FEXIT: u16 = 33;

/// The tracepoint programs; the skb is argument 0 of each.
pub const TRACEPOINTS: &[Tracepoint] = &[
    Tracepoint {
        name: "kfree_skb",
        category: "skb",
        program: "xcap_tp_kfree_skb",
        hook: HOOK_KFREE_SKB,
    },
    Tracepoint {
        name: "consume_skb",
        category: "skb",
        program: "xcap_tp_consume_skb",
        hook: HOOK_CONSUME_SKB,
    },
    Tracepoint {
        name: "netif_receive_skb",
        category: "net",
        program: "xcap_tp_netif_receive_skb",
        hook: HOOK_NETIF_RECEIVE_SKB,
    },
    Tracepoint {
        name: "net_dev_queue",
        category: "net",
        program: "xcap_tp_net_dev_queue",
        hook: HOOK_NET_DEV_QUEUE,
    },
    Tracepoint {
        name: "net_dev_xmit",
        category: "net",
        program: "xcap_tp_net_dev_xmit",
        hook: HOOK_NET_DEV_XMIT,
    },
];

/// The `fentry` programs are `xcap_fentry_arg0` ..
/// `xcap_fentry_arg{MAX_FENTRY_ARG}`, one per position of the skb argument
/// (the verifier wants a constant offset into the context); the attach
/// target is given at load time.
pub const FENTRY_PROGRAM_PREFIX: &str = "xcap_fentry_arg";
pub const MAX_FENTRY_ARG: usize = 5;
/// The `fexit` programs, `xcap_fexit_arg0` .. `xcap_fexit_arg5` likewise:
/// after the function the skb may be freed, so they copy at most
/// [`MAX_PRE`] bytes of its linear part with probe reads, into
/// [`TraceHdr::pre`], and append nothing.
pub const FEXIT_PROGRAM_PREFIX: &str = "xcap_fexit_arg";

/// The filter on packets with a MAC header (DLT_EN10MB, probe mode).
pub const STUB_L2: &str = "xcap_filter_trace_l2";
/// The filter on packets from the network header (DLT_RAW, probe mode).
pub const STUB_L3: &str = "xcap_filter_trace_l3";

/// `[u32; OFF_LEN]`: field offsets, indexed by `OFF_*`; `u32::MAX` marks
/// a field the kernel lacks.
pub const GLOBAL_OFFSETS: &str = "XCAP_TRACE_OFF";
/// u32: non-zero records each matched packet's kernel stack in
/// [`STACKS_MAP`].
pub const GLOBAL_STACK: &str = "XCAP_TRACE_STACK";
/// Kernel stacks by id (`bpf_get_stackid`). One entry in the object: the
/// loader sets `max_entries` when stacks are asked for.
pub const STACKS_MAP: &str = "XCAP_TRACE_STACKS";

/// Indices into [`GLOBAL_OFFSETS`]: byte offsets found in the kernel's BTF.
pub const OFF_SKB_HEAD: usize = 0;
pub const OFF_SKB_DATA: usize = 1;
pub const OFF_SKB_LEN: usize = 2;
pub const OFF_SKB_DATA_LEN: usize = 3;
pub const OFF_SKB_MAC_HEADER: usize = 4;
pub const OFF_SKB_NETWORK_HEADER: usize = 5;
pub const OFF_SKB_DEV: usize = 6;
pub const OFF_DEV_IFINDEX: usize = 7;
pub const OFF_DEV_TYPE: usize = 8;
pub const OFF_DEV_ND_NET: usize = 9;
/// `net.ns.inum`: the offsets of `ns` in `net` and `inum` in `ns_common`.
pub const OFF_NET_NS_INUM: usize = 10;
/// Non-zero once user space filled the table (an unconfigured object does
/// nothing).
pub const OFF_VALID: usize = 11;
/// How many arguments the `kfree_skb` and `consume_skb` tracepoints pass
/// on this kernel (from BTF): reading one past them fails verification,
/// and a constant test in the program is pruned by the verifier.
pub const OFF_KFREE_SKB_ARGS: usize = 12;
pub const OFF_CONSUME_SKB_ARGS: usize = 13;
/// `struct xdp_buff` and what `--xdp-hook`'s programs read through it;
/// `u32::MAX` in [`OFF_XDP_FLAGS`] or the `OFF_SHINFO_*` slots (kernels
/// without multi-buffer XDP) means every frame has one buffer.
pub const OFF_XDP_DATA: usize = 14;
pub const OFF_XDP_DATA_END: usize = 15;
pub const OFF_XDP_HARD_START: usize = 16;
pub const OFF_XDP_RXQ: usize = 17;
pub const OFF_XDP_FRAME_SZ: usize = 18;
pub const OFF_XDP_FLAGS: usize = 19;
/// `xdp_rxq_info.dev`.
pub const OFF_RXQ_DEV: usize = 20;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))`: a multi-buffer
/// frame's shared info sits this far below the end of its first buffer.
pub const OFF_SHINFO_SIZE: usize = 21;
/// `skb_shared_info.xdp_frags_size`: the bytes past the first buffer.
pub const OFF_SHINFO_FRAGS_SIZE: usize = 22;
pub const OFF_LEN: usize = 24;

/// `--xdp-hook`: fentry and fexit programs loaded on an XDP program (the
/// target's fd and its main function's BTF id given at load time). Their
/// samples are [`TraceHdr`]s too, with `skb` the packet id (the CPU in the
/// top 16 bits, a per-CPU sequence below: entry and exit of one run share
/// it), `reason` the verdict (exit only), `location` the hooked program's
/// address (`bpf_get_func_ip`), `link` [`LINK_EN10MB`], no task.
pub const XDP_ENTRY_PROGRAM: &str = "xcap_xdp_entry";
pub const XDP_EXIT_PROGRAM: &str = "xcap_xdp_exit";
pub const HOOK_XDP_ENTRY: u16 = 48;
pub const HOOK_XDP_EXIT: u16 = 49;
/// u32: 1 when the entry program advances the packet sequence, 0 when the
/// exit program does (only exits are hooked).
pub const GLOBAL_XDP_ENTRY_COUNTS: &str = "XCAP_XDP_ENTRY_COUNTS";
/// [u64; 2]: the code (`[start, end)`) of the hooked program packets meet
/// first, when several programs they pass one after the other are hooked
/// (the components of libxdp's dispatcher): only hooks on it advance the
/// packet sequence, so every component's copies of one packet share an
/// id. `[0, 0]`: every hooked program advances it.
pub const GLOBAL_XDP_FIRST_CODE: &str = "XCAP_XDP_FIRST_CODE";
/// The per-CPU packet sequence (one u64 per CPU).
pub const XDP_SEQ_MAP: &str = "XCAP_XDP_SEQ";

/// Most bytes between the packet start and `skb->data` carried in
/// [`TraceHdr::pre`].
pub const MAX_PRE: usize = 256;

/// [`TraceHdr::link`]: the packet starts at the MAC header (Ethernet or
/// loopback device).
pub const LINK_EN10MB: u8 = 1;
/// The packet starts at the network header.
pub const LINK_RAW: u8 = 2;

/// The sample header in front of the packet bytes (host byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TraceHdr {
    /// `bpf_ktime_get_tai_ns()`.
    pub ts_ns: u64,
    /// The skb's address (pairs copies of one packet seen at several hooks).
    pub skb: u64,
    /// kfree_skb / consume_skb: the caller's address.
    pub location: u64,
    pub wirelen: u32,
    /// Packet bytes in total: `pre_len` here, the rest after the header.
    pub caplen: u32,
    pub pre_len: u32,
    /// Bytes to drop from the front of the appended part.
    pub skip: u32,
    pub ifindex: u32,
    /// kfree_skb: `enum skb_drop_reason`; net_dev_xmit: the return code.
    pub reason: u32,
    /// Inode of the device's network namespace (0: unknown).
    pub netns: u32,
    /// `bpf_get_current_pid_tgid()`: tgid, tid of the task running when
    /// the hook fired (the socket's owner is [`TraceHdr::owner`]).
    pub pid: u32,
    pub tid: u32,
    pub filter_ret: u32,
    pub cpu: u32,
    /// `HOOK_*`.
    pub hook: u16,
    /// `LINK_*`.
    pub link: u8,
    pub flags: u8,
    /// `bpf_get_current_comm()`, NUL-padded.
    pub comm: [u8; 16],
    /// The bytes from the packet start to `skb->data`: `pre_len` of them.
    pub pre: [u8; MAX_PRE],
    /// `bpf_get_stackid()` (a negative errno when it failed), or -1 when
    /// stacks are off.
    pub stack_id: i32,
    pub reserved: u32,
    /// With attribution: the process of the packet's socket, when
    /// `owner_state` is [`super::owner::OWNER_FOUND`].
    pub owner: super::owner::Owner,
    /// `super::owner::OWNER_*`.
    pub owner_state: u8,
    pub _owner_pad: [u8; 7],
}

/// Bytes of [`TraceHdr`]: the appended packet bytes start this far into a
/// sample.
pub const TRACE_HDR_BYTES: usize = core::mem::size_of::<TraceHdr>();
// A new field changes this size: keep the header free of padding.
const _: () = assert!(TRACE_HDR_BYTES == 400);

// SAFETY: integers and arrays of integers only, and no padding (400
// bytes, checked above).
unsafe impl super::Plain for TraceHdr {}
