//! Capture at tracing hooks: `tp_btf` tracepoints that carry an skb
//! (`skb:kfree_skb` with its drop reason, `skb:consume_skb`,
//! `net:netif_receive_skb`, `net:net_dev_queue`, `net:net_dev_xmit`) and
//! `fentry` on any kernel function with a `struct sk_buff *` argument.
//!
//! [`TraceCapture::start`] checks everything before it attaches anything:
//! the kernel BTF, the hook names, the function and its skb argument, the
//! filter (compiled twice with libpcap: for DLT_EN10MB, used on packets with
//! a MAC header, and for DLT_RAW, used from the network header), the
//! translation in [`cbpf2ebpf::Mode::Probe`], the splice and the load. Only
//! then are the programs attached; on any error nothing stays attached.
//!
//! Only the linear part of the skb (`head .. data + skb_headlen`) is seen by
//! the filter; the captured bytes past `skb->data` are copied by
//! `bpf_skb_output` and include paged data. See `capture-bpf/src/trace.rs`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use capture_abi as abi;
use capture_abi::trace::{
    TraceHdr, Tracepoint, FENTRY_PROGRAM_PREFIX, FEXIT_PROGRAM_PREFIX, GLOBAL_OFFSETS,
    GLOBAL_STACK, GLOBAL_XDP_ENTRY_COUNTS, HOOK_FENTRY, HOOK_FEXIT, HOOK_XDP_ENTRY, HOOK_XDP_EXIT,
    LINK_EN10MB, MAX_FENTRY_ARG, MAX_PRE, OFF_CONSUME_SKB_ARGS, OFF_DEV_IFINDEX, OFF_DEV_ND_NET,
    OFF_DEV_TYPE, OFF_KFREE_SKB_ARGS, OFF_LEN, OFF_NET_NS_INUM, OFF_RXQ_DEV, OFF_SHINFO_FRAGS_SIZE,
    OFF_SHINFO_SIZE, OFF_SKB_DATA, OFF_SKB_DATA_LEN, OFF_SKB_DEV, OFF_SKB_HEAD, OFF_SKB_LEN,
    OFF_SKB_MAC_HEADER, OFF_SKB_NETWORK_HEADER, OFF_VALID, OFF_XDP_DATA, OFF_XDP_DATA_END,
    OFF_XDP_FLAGS, OFF_XDP_FRAME_SZ, OFF_XDP_HARD_START, OFF_XDP_RXQ, STACKS_MAP, STUB_L2, STUB_L3,
    TRACEPOINTS, TRACE_HDR_BYTES, XDP_ENTRY_PROGRAM, XDP_EXIT_PROGRAM,
};
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};

use crate::object::{AttachTarget, LoadError};
use crate::{pcapng, perf, programs, sys, xdp_hook, Error, Shared, Stats};
use btf::Btf;

/// Distinct stacks kept with `--stack` (the object has one entry).
pub const STACKS_MAX: u32 = 4096;

/// A hook asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceHook {
    /// A tracepoint name, with or without its category (`skb:kfree_skb`).
    Tracepoint(String),
    /// A kernel function and, optionally, the position of its skb argument.
    Fentry {
        function: String,
        arg: Option<usize>,
    },
    /// A kernel function's exit (`--fexit`): the skb argument after the
    /// function ran, with its return value.
    Fexit {
        function: String,
        arg: Option<usize>,
    },
    /// XDP programs (`--xdp-hook PROG`, see [`crate::xdp_hook`]): each
    /// packet as it enters (fentry) and, with its verdict, as it leaves
    /// (fexit).
    XdpProgram {
        program: String,
        entry: bool,
        exit: bool,
    },
}

#[derive(Clone, Debug)]
pub struct TraceConfig {
    pub hooks: Vec<TraceHook>,
    pub expression: String,
    pub snaplen: u32,
    pub perf_pages: usize,
    pub wakeup: crate::Wakeup,
    pub poll_ms: i32,
    pub queue_batches: usize,
    /// Record each packet's kernel stack (see [`TraceCapture::stack`]).
    pub stack: bool,
    /// Attribution and process filters, from each packet's socket (see
    /// [`crate::attribution`]); not at `--xdp-hook`, which has no socket.
    pub who: Option<crate::attribution::Who>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            hooks: Vec::new(),
            expression: String::new(),
            snaplen: 262_144,
            perf_pages: 256,
            wakeup: crate::Wakeup::Events(1),
            poll_ms: 50,
            queue_batches: 1024,
            stack: false,
            who: None,
        }
    }
}

/// The link type of a captured packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// From the MAC header (LINKTYPE_ETHERNET).
    Ethernet,
    /// From the network header (LINKTYPE_RAW).
    Raw,
}

impl LinkType {
    pub fn pcap_linktype(self) -> u16 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "EN10MB",
            LinkType::Raw => "RAW",
        }
    }
}

/// An attached hook.
#[derive(Clone, Debug)]
pub struct AttachedHook {
    /// `kfree_skb`, `fentry:ip_rcv`.
    pub name: String,
    /// e.g. "tp_btf skb:kfree_skb", "fentry ip_rcv (arg 0 skb)".
    pub description: String,
    pub id: u16,
    /// `--xdp-hook`: the hooked program's code, which tells its records
    /// from other hooked programs' (`None`: the only one, or addresses
    /// hidden).
    code: Option<std::ops::Range<u64>>,
}

impl AttachedHook {
    /// Whether the hook is on an XDP program (`--xdp-hook`): its packets
    /// are Ethernet frames with a packet id and, at exit, a verdict.
    pub fn on_xdp_program(&self) -> bool {
        self.id == HOOK_XDP_ENTRY || self.id == HOOK_XDP_EXIT
    }
}

/// One captured packet.
#[derive(Clone, Debug)]
pub struct TracePacket {
    /// Wall-clock time, ns since the epoch.
    pub ts_ns: u64,
    /// Index into [`TraceCapture::hooks`].
    pub hook: usize,
    pub link: LinkType,
    pub ifindex: u32,
    /// kfree_skb: the drop reason; net_dev_xmit: the return code.
    pub reason: u32,
    /// kfree_skb / consume_skb: the kernel address of the caller.
    pub location: u64,
    pub netns: u32,
    /// The task running when the hook fired (not always the packet's
    /// process: that is [`TracePacket::owner`]).
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// With [`TraceConfig::who`]: the process of the packet's socket.
    pub owner: crate::attribution::Owner,
    pub cpu: u32,
    /// The skb's address.
    pub skb: u64,
    pub wirelen: u32,
    pub data: Vec<u8>,
    /// `bpf_get_stackid()`: an id in the stack map, a negative errno when
    /// the kernel could not record the stack, -1 when stacks are off.
    pub stack_id: i32,
    /// `--xdp-hook`, at exit: the XDP program's return value.
    pub verdict: Option<u32>,
}

/// A running tracing capture.
pub struct TraceCapture {
    programs: Programs,
    links: Vec<Box<dyn std::any::Any + Send>>,
    readers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    rx: Option<Receiver<Vec<TracePacket>>>,
    hooks: Vec<AttachedHook>,
    detached: bool,
    reasons: HashMap<u32, String>,
    /// Stacks were asked for ([`TraceConfig::stack`]).
    stack: bool,
    /// The owner programs and process filters, with [`TraceConfig::who`].
    attribution: Option<crate::attribution::Attribution>,
    /// cBPF and eBPF sizes, for `-v`: (link type, cBPF, eBPF).
    pub filters: Vec<(LinkType, usize, usize)>,
}

/// The loaded object, by xcap's own loader: its maps and one program per
/// hook, in order (a program of the object may be loaded several times,
/// once per target).
struct Programs {
    maps: Box<crate::object::Maps>,
    loaded: Vec<OwnedFd>,
}

/// Frames in a stack map value (`PERF_MAX_STACK_DEPTH`, as capture-bpf's
/// map declares it).
const STACK_DEPTH: usize = 127;

/// A resolved hook, ready to load.
enum Planned {
    Tp {
        name: &'static str,
        prog: &'static str,
        id: u16,
        desc: String,
    },
    /// fentry, or fexit when `exit`.
    Fentry {
        function: String,
        prog: String,
        desc: String,
        exit: bool,
    },
}

/// Resolves a tracepoint name (`kfree_skb` or `skb:kfree_skb`).
fn tracepoint(name: &str) -> Option<Tracepoint> {
    let (cat, bare) = match name.split_once(':') {
        Some((c, b)) => (Some(c), b),
        None => (None, name),
    };
    TRACEPOINTS
        .iter()
        .find(|t| t.name == bare && cat.is_none_or(|c| c == t.category))
        .copied()
}

fn plan(btf: &Btf, hooks: &[TraceHook]) -> Result<Vec<Planned>, Error> {
    let mut out = Vec::new();
    let mut fentries = 0;
    let mut fexits = 0;
    for h in hooks {
        match h {
            TraceHook::Tracepoint(name) => {
                let Some(Tracepoint {
                    name: n,
                    category: cat,
                    program: prog,
                    hook: id,
                }) = tracepoint(name)
                else {
                    let known: Vec<String> = TRACEPOINTS
                        .iter()
                        .map(|t| format!("{}:{}", t.category, t.name))
                        .collect();
                    return Err(Error::Config(format!(
                        "unknown tracepoint '{name}' (known: {})",
                        known.join(", ")
                    )));
                };
                if out
                    .iter()
                    .any(|p| matches!(p, Planned::Tp { name, .. } if *name == n))
                {
                    continue;
                }
                out.push(Planned::Tp {
                    name: n,
                    prog,
                    id,
                    desc: format!("tp_btf {cat}:{n}"),
                });
            }
            // Loaded apart: see `start_xdp_hooks`.
            TraceHook::XdpProgram { .. } => {}
            TraceHook::Fentry { function, arg } | TraceHook::Fexit { function, arg } => {
                let exit = matches!(h, TraceHook::Fexit { .. });
                let (kind, count) = match exit {
                    false => ("fentry", &mut fentries),
                    true => ("fexit", &mut fexits),
                };
                *count += 1;
                if *count > 1 {
                    return Err(Error::Config(format!(
                        "only one --{kind} function per capture (for now)"
                    )));
                }
                let Some(params) = btf.function_params(function) else {
                    return Err(Error::Config(format!(
                        "no kernel function '{function}' in the kernel BTF"
                    )));
                };
                let skb_args: Vec<usize> = params
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| btf.is_ptr_to_struct(p.type_id, "sk_buff"))
                    .map(|(i, _)| i)
                    .collect();
                let n = match arg {
                    Some(n) => {
                        if *n >= params.len() {
                            return Err(Error::Config(format!(
                                "{function} has {} argument{}, no argument {n}",
                                params.len(),
                                if params.len() == 1 { "" } else { "s" }
                            )));
                        }
                        if !skb_args.contains(n) {
                            return Err(Error::Config(format!(
                                "argument {n} of {function} ({} {}) is not a struct sk_buff *",
                                btf.type_name(params[*n].type_id),
                                params[*n].name
                            )));
                        }
                        *n
                    }
                    None => match skb_args.first() {
                        Some(n) => *n,
                        None => {
                            return Err(Error::Config(format!(
                                "{function} has no struct sk_buff * argument"
                            )))
                        }
                    },
                };
                if n > MAX_FENTRY_ARG {
                    return Err(Error::Config(format!(
                        "{function}: the sk_buff is argument {n}; xcap reads arguments 0 to {MAX_FENTRY_ARG}"
                    )));
                }
                let prefix = match exit {
                    false => FENTRY_PROGRAM_PREFIX,
                    true => FEXIT_PROGRAM_PREFIX,
                };
                out.push(Planned::Fentry {
                    function: function.clone(),
                    prog: format!("{prefix}{n}"),
                    desc: format!("{kind} {function} (argument {n}, {})", params[n].name),
                    exit,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Config("no tracing hook given".into()));
    }
    Ok(out)
}

/// The `sk_buff`, `net_device` and `net` offsets the programs read.
fn offsets(btf: &Btf) -> Result<[u32; OFF_LEN], Error> {
    let need = |s: &str, f: &str| {
        btf.member_offset(s, f)
            .ok_or_else(|| Error::Config(format!("the kernel BTF has no field {f} in struct {s}")))
    };
    let mut o = [0u32; OFF_LEN];
    o[OFF_SKB_HEAD] = need("sk_buff", "head")?;
    o[OFF_SKB_DATA] = need("sk_buff", "data")?;
    o[OFF_SKB_LEN] = need("sk_buff", "len")?;
    o[OFF_SKB_DATA_LEN] = need("sk_buff", "data_len")?;
    o[OFF_SKB_MAC_HEADER] = need("sk_buff", "mac_header")?;
    o[OFF_SKB_NETWORK_HEADER] = need("sk_buff", "network_header")?;
    o[OFF_SKB_DEV] = need("sk_buff", "dev")?;
    o[OFF_DEV_IFINDEX] = need("net_device", "ifindex")?;
    o[OFF_DEV_TYPE] = need("net_device", "type")?;
    o[OFF_DEV_ND_NET] = need("net_device", "nd_net")?;
    o[OFF_NET_NS_INUM] = match (
        btf.member_offset("net", "ns"),
        btf.member_offset("ns_common", "inum"),
    ) {
        (Some(a), Some(b)) => a + b,
        _ => u32::MAX,
    };
    o[OFF_VALID] = 1;
    // Arguments the tracepoints pass on this kernel: kfree_skb's drop
    // reason came in 5.17, consume_skb's caller address in 6.3.
    o[OFF_KFREE_SKB_ARGS] = btf.tracepoint_args("kfree_skb").unwrap_or(0) as u32;
    o[OFF_CONSUME_SKB_ARGS] = btf.tracepoint_args("consume_skb").unwrap_or(0) as u32;
    xdp_buff_offsets(btf, &mut o);
    Ok(o)
}

/// `struct xdp_buff` and what `--xdp-hook` reads through it (the
/// `OFF_XDP_*`, `OFF_RXQ_*` and `OFF_SHINFO_*` slots). `u32::MAX` marks
/// what this kernel lacks: the hook then refuses to start (see
/// [`crate::xdp_hook`]), except for multi-buffer fields, without which
/// frames have one buffer.
fn xdp_buff_offsets(btf: &Btf, o: &mut [u32; OFF_LEN]) {
    let at = |s: &str, f: &str| btf.member_offset(s, f).unwrap_or(u32::MAX);
    o[OFF_XDP_DATA] = at("xdp_buff", "data");
    o[OFF_XDP_DATA_END] = at("xdp_buff", "data_end");
    o[OFF_XDP_HARD_START] = at("xdp_buff", "data_hard_start");
    o[OFF_XDP_RXQ] = at("xdp_buff", "rxq");
    o[OFF_XDP_FRAME_SZ] = at("xdp_buff", "frame_sz");
    o[OFF_XDP_FLAGS] = at("xdp_buff", "flags");
    o[OFF_RXQ_DEV] = at("xdp_rxq_info", "dev");
    // SKB_DATA_ALIGN: to SMP_CACHE_BYTES, 64 on x86-64.
    o[OFF_SHINFO_SIZE] = btf
        .find("skb_shared_info", btf::Kind::Struct)
        .and_then(|id| btf.get(id))
        .map_or(u32::MAX, |t| t.size_or_type.next_multiple_of(64));
    o[OFF_SHINFO_FRAGS_SIZE] = at("skb_shared_info", "xdp_frags_size");
}

/// The filter for one link type; `None` when libpcap refuses the expression
/// for that link type (e.g. `ether host` on RAW): such packets never match.
fn filter_for(expr: &str, dlt: i32, snaplen: u32) -> Result<Vec<cbpf2ebpf::cbpf::Insn>, String> {
    libpcap::compile_with(expr, dlt, snaplen, true, 0).map_err(|e| e.message)
}

impl TraceCapture {
    pub fn start(cfg: &TraceConfig) -> Result<TraceCapture, Error> {
        Self::start_on_this_kernel(cfg).map_err(crate::kernel::explain)
    }

    fn start_on_this_kernel(cfg: &TraceConfig) -> Result<TraceCapture, Error> {
        crate::check_privileges()?;
        if !(1..=262_144).contains(&cfg.snaplen) {
            return Err(Error::Config(format!("invalid snaplen {}", cfg.snaplen)));
        }
        let btf = Btf::vmlinux().map_err(Error::Config)?;
        let xdp_programs = xdp_programs(&cfg.hooks)?;
        let planned = match xdp_programs {
            Some(_) => Vec::new(),
            None => plan(&btf, &cfg.hooks)?,
        };
        let offs = offsets(&btf)?;
        let reasons: HashMap<u32, String> = btf
            .enum_values("skb_drop_reason")
            .into_iter()
            .map(|(n, v)| {
                let short = n.strip_prefix("SKB_DROP_REASON_").unwrap_or(&n).to_owned();
                (v as u32, short)
            })
            .collect();
        let compiled = compile_filters(cfg)?;
        match xdp_programs {
            Some((program, entry, exit)) => {
                start_xdp_hooks(cfg, program, entry, exit, &offs, compiled, reasons)
            }
            None => start_kernel_hooks(cfg, &btf, &planned, &offs, compiled, reasons),
        }
    }

    /// The attached hooks, in the order given.
    pub fn hooks(&self) -> &[AttachedHook] {
        &self.hooks
    }

    /// The name of a drop reason (`NETFILTER_DROP`), from the kernel BTF.
    pub fn reason_name(&self, reason: u32) -> String {
        self.reasons
            .get(&reason)
            .cloned()
            .unwrap_or_else(|| format!("{reason:#x}"))
    }

    /// The kernel stack of a packet captured with [`TraceConfig::stack`],
    /// innermost frame first: `None` without stacks, `Err` when the kernel
    /// could not record it (e.g. `-EEXIST`: the map's bucket holds another
    /// stack) or the map has no such id.
    pub fn stack(&self, p: &TracePacket) -> Option<Result<Vec<u64>, String>> {
        if !self.stack {
            return None;
        }
        if p.stack_id < 0 {
            return Some(Err(format!(
                "bpf_get_stackid: {}",
                io::Error::from_raw_os_error(-p.stack_id)
            )));
        }
        let frames = self
            .programs
            .maps
            .map(STACKS_MAP)
            .ok_or_else(|| format!("no map {STACKS_MAP}"))
            .and_then(|map| {
                let mut frames = vec![0u8; 8 * STACK_DEPTH];
                sys::map_lookup(map, &(p.stack_id as u32).to_ne_bytes(), &mut frames)
                    .map_err(|e| format!("stack {}: {e}", p.stack_id))?;
                Ok(frames
                    .chunks_exact(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
                    .take_while(|&ip| ip != 0)
                    .collect())
            });
        Some(frames)
    }

    /// Whether a hook's `reason` field is the function's return value
    /// (`--fexit`; its low 32 bits).
    pub fn has_return_value(&self, hook: usize) -> bool {
        self.hooks.get(hook).is_some_and(|h| h.id == HOOK_FEXIT)
    }

    /// Whether a hook's `reason` field is a drop reason.
    pub fn has_drop_reason(&self, hook: usize) -> bool {
        self.hooks.get(hook).is_some_and(|h| h.id == 16)
    }

    /// A handle that wakes [`TraceCapture::recv_timeout`] from another thread.
    pub fn waker(&self) -> crate::Waker {
        crate::Waker(self.shared.clone())
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<TracePacket>, RecvTimeoutError> {
        crate::recv_batch(self.rx.as_ref(), timeout)
    }

    /// Detaches every program; the readers drain their rings and stop.
    pub fn detach(&mut self) {
        crate::detach_links(&mut self.detached, &mut self.links, &self.shared);
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats(self.programs.maps.map(abi::COUNTERS_MAP))
    }
}

/// The filters, compiled by libpcap and translated in probe mode.
struct Compiled {
    /// Spliced into the capture object.
    elf: Vec<u8>,
    /// Their bodies, inlined where the programs call them (own loader).
    bodies: Vec<Vec<cbpf2ebpf::ebpf::Insn>>,
    /// (link type, cBPF, eBPF instructions), for `-v`.
    sizes: Vec<(LinkType, usize, usize)>,
}

/// EN10MB for packets with a MAC header, RAW without.
fn compile_filters(cfg: &TraceConfig) -> Result<Compiled, Error> {
    // Filters: EN10MB for packets with a MAC header, RAW without.
    let l2 = filter_for(&cfg.expression, libpcap::DLT_EN10MB, cfg.snaplen);
    let l3 = filter_for(&cfg.expression, libpcap::DLT_RAW, cfg.snaplen);
    let (l2, l3) = match (l2, l3) {
        (Err(e), Err(_)) => return Err(Error::Filter(e)),
        (a, b) => (
            a.unwrap_or_else(|_| vec![cbpf2ebpf::cbpf::Insn::new(0x06, 0, 0, 0)]),
            b.unwrap_or_else(|_| vec![cbpf2ebpf::cbpf::Insn::new(0x06, 0, 0, 0)]),
        ),
    };
    let opts = Options {
        mode: Mode::Probe,
        hook: Hook::None,
        gotol: bpf_sys::kernel_has_gotol(),
        ..Options::default()
    };
    let tr = |p: &[cbpf2ebpf::cbpf::Insn]| {
        translate(p, &opts)
            .map(|t| t.insns)
            .map_err(|e| Error::Translate {
                hook: "tracing (probe mode)",
                message: e.to_string(),
            })
    };
    let f2 = tr(&l2)?;
    let f3 = tr(&l3)?;
    let sizes = vec![
        (LinkType::Ethernet, l2.len(), f2.len()),
        (LinkType::Raw, l3.len(), f3.len()),
    ];
    let spliced = programs::splice(&[(STUB_L2, &f2[..]), (STUB_L3, &f3[..])])?;

    Ok(Compiled {
        elf: spliced.elf,
        bodies: vec![f2, f3],
        sizes,
    })
}

/// `--xdp-hook`'s hook, if it is asked for: (program, entry, exit). It
/// is not mixed with other tracing hooks.
fn xdp_programs(hooks: &[TraceHook]) -> Result<Option<(&str, bool, bool)>, Error> {
    let xdp: Vec<(&str, bool, bool)> = hooks
        .iter()
        .filter_map(|h| match h {
            TraceHook::XdpProgram {
                program,
                entry,
                exit,
            } => Some((program.as_str(), *entry, *exit)),
            _ => None,
        })
        .collect();
    match xdp[..] {
        [] => Ok(None),
        [one] if hooks.len() == 1 => Ok(Some(one)),
        [_] => Err(Error::Config(
            "--xdp-hook does not combine with --trace or --fentry in one capture".into(),
        )),
        _ => Err(Error::Config("one --xdp-hook per capture".into())),
    }
}

/// Tracepoints and fentry on kernel functions: each program loaded by
/// xcap's own loader against its target's id in the kernel's BTF (the one
/// parse of it), then attached.
fn start_kernel_hooks(
    cfg: &TraceConfig,
    btf: &Btf,
    planned: &[Planned],
    offs: &[u32; OFF_LEN],
    compiled: Compiled,
    reasons: HashMap<u32, String>,
) -> Result<TraceCapture, Error> {
    let snaplen = cfg.snaplen.to_ne_bytes();
    let stack = u32::from(cfg.stack).to_ne_bytes();
    let offs_bytes: Vec<u8> = offs.iter().flat_map(|o| o.to_ne_bytes()).collect();
    let stacks_max: &[(&str, u32)] = if cfg.stack {
        &[(STACKS_MAP, STACKS_MAX)]
    } else {
        &[]
    };
    let [attributing, select] = crate::attribution::globals(cfg.who.as_ref());
    let sk_offset = skb_sk_offset(btf, cfg)?.to_ne_bytes();
    let maps = crate::object::Maps::create(
        &compiled.elf,
        &[
            (abi::GLOBAL_SNAPLEN, &snaplen[..]),
            (GLOBAL_OFFSETS, &offs_bytes[..]),
            (GLOBAL_STACK, &stack[..]),
            (attributing.0, &attributing.1),
            (select.0, &select.1),
            (capture_abi::owner::GLOBAL_SKB_SK_OFFSET, &sk_offset),
        ],
        perf::page_size() as u32,
        made_maps()?,
        stacks_max,
    )?;
    let (loaded, hooks) = load_kernel_hooks(&maps, btf, planned)?;
    let attribution = match &cfg.who {
        Some(who) => Some(crate::attribution::Attribution::start_beside(&maps, who)?),
        None => None,
    };
    let mut cap = start_reading(cfg, maps, loaded, hooks, reasons, cfg.stack, compiled.sizes)?;
    cap.attribution = attribution;
    // Attach; on error `cap` is dropped, which detaches what was attached.
    for (p, program) in planned.iter().zip(&cap.programs.loaded) {
        let link = sys::tracing_attach(program.as_fd()).map_err(|e| Error::Attach {
            iface: "kernel".into(),
            hook: p.desc().to_owned(),
            message: e.to_string(),
        })?;
        cap.links.push(Box::new(link));
    }
    Ok(cap)
}

/// Where `struct sk_buff` keeps its socket, for attribution (0 without).
fn skb_sk_offset(btf: &Btf, cfg: &TraceConfig) -> Result<u32, Error> {
    if cfg.who.is_none() {
        return Ok(0);
    }
    btf.member_offset("sk_buff", "sk").ok_or_else(|| {
        Error::Config("attribution: the kernel BTF has no field sk in struct sk_buff".into())
    })
}

/// Loads each planned program against its target: a tracepoint's
/// `btf_trace_<name>`, a function; and the hooks, as records name them.
fn load_kernel_hooks(
    maps: &crate::object::Maps,
    btf: &Btf,
    planned: &[Planned],
) -> Result<(Vec<OwnedFd>, Vec<AttachedHook>), Error> {
    let mut loaded = Vec::new();
    let mut hooks = Vec::new();
    for p in planned {
        let (prog, target, hook) = match p {
            Planned::Tp {
                name,
                prog,
                id,
                desc,
            } => (
                *prog,
                btf.tracepoint_id(name),
                AttachedHook {
                    name: (*name).to_owned(),
                    description: desc.clone(),
                    id: *id,
                    code: None,
                },
            ),
            Planned::Fentry {
                function,
                prog,
                desc,
                exit,
            } => (
                prog.as_str(),
                btf.function_id(function),
                AttachedHook {
                    name: format!("{}:{function}", trampoline_kind(*exit)),
                    description: desc.clone(),
                    id: if *exit { HOOK_FEXIT } else { HOOK_FENTRY },
                    code: None,
                },
            ),
        };
        let desc = p.desc();
        let btf_id =
            target.ok_or_else(|| Error::Load(format!("{desc}: not in the kernel's BTF")))?;
        let target = AttachTarget { prog: None, btf_id };
        let fd = maps.load_tracing(prog, target, &[]).map_err(|e| match (e, p) {
            // Seen on Linux 6.18 with lockdown=integrity: every trampoline
            // program (fentry, fexit, fmod_ret, lsm) is refused before the
            // verifier runs, while tp_btf loads.
            (LoadError::Refused, Planned::Fentry { exit, .. }) => Error::Load(format!(
                "{desc}: the kernel refuses {} programs (BPF_PROG_LOAD: Operation not permitted, no verifier log; kernel lockdown or a security policy forbids BPF trampolines); use --trace instead",
                trampoline_kind(*exit)
            )),
            (LoadError::Refused, Planned::Tp { .. }) => {
                Error::Load(format!("{desc}: BPF_PROG_LOAD: Operation not permitted"))
            }
            (LoadError::Other(m), _) => Error::Load(format!("{desc}: {m}")),
        })?;
        loaded.push(fd);
        hooks.push(hook);
    }
    Ok((loaded, hooks))
}

/// The maps of the object that only xcap can make: the attribution's
/// socket storage (it needs BTF for its key and value, which the loader
/// does not send), unused by the tracing programs.
fn made_maps() -> Result<HashMap<String, OwnedFd>, Error> {
    Ok(HashMap::from([(
        capture_abi::owner::OWNERS_MAP.to_string(),
        crate::attribution::owners_map()?,
    )]))
}

/// The capture before its attach step, shared by kernel and XDP hooks:
/// readers started on the events map, the loaded programs kept.
fn start_reading(
    cfg: &TraceConfig,
    maps: crate::object::Maps,
    loaded: Vec<OwnedFd>,
    hooks: Vec<AttachedHook>,
    reasons: HashMap<u32, String>,
    stack: bool,
    filters: Vec<(LinkType, usize, usize)>,
) -> Result<TraceCapture, Error> {
    let map_fd = maps
        .map(abi::EVENTS_MAP)
        .ok_or_else(|| Error::Load(format!("no map {}", abi::EVENTS_MAP)))?
        .as_raw_fd();
    let keys = hooks.iter().map(HookKey::of).collect();
    let (shared, rx, readers) = start_readers(cfg, map_fd, keys)?;
    Ok(TraceCapture {
        programs: Programs {
            maps: Box::new(maps),
            loaded,
        },
        links: Vec::new(),
        readers,
        shared,
        rx: Some(rx),
        hooks,
        detached: false,
        reasons,
        stack,
        attribution: None,
        filters,
    })
}

/// The perf buffer of each CPU in the perf event array `map_fd`, and the
/// reader of them all: before anything is attached.
#[allow(clippy::type_complexity)]
fn start_readers(
    cfg: &TraceConfig,
    map_fd: std::os::fd::RawFd,
    keys: Vec<HookKey>,
) -> Result<(Arc<Shared>, Receiver<Vec<TracePacket>>, Vec<JoinHandle<()>>), Error> {
    let shared = Shared::new()?;
    let cpus = crate::cpus::online()?;
    let (tx, rx) = mpsc::sync_channel::<Vec<TracePacket>>(cfg.queue_batches.max(1));
    let waker_tx = tx.clone();
    *shared.wake_consumer() = Some(Box::new(move || {
        let _ = waker_tx.try_send(Vec::new());
    }));
    let tai_offset = crate::tai_to_realtime_ns();
    let mut rings = Vec::new();
    for cpu in cpus {
        let ring = perf::PerfRing::open(cpu, cfg.perf_pages, cfg.wakeup)
            .map_err(|e| Error::Buffer(format!("cpu {cpu}: {e}")))?;
        perf::set_perf_fd(map_fd, cpu, ring.fd())
            .map_err(|e| Error::Buffer(format!("cpu {cpu}: {e}")))?;
        rings.push(ring);
    }
    let (reader_shared, poll_ms) = (shared.clone(), cfg.poll_ms);
    let readers = vec![std::thread::Builder::new()
        .name("xcap-trace".into())
        .spawn(move || reader(rings, tx, reader_shared, keys, tai_offset, poll_ms))
        .map_err(|e| Error::Buffer(e.to_string()))?];
    Ok((shared, rx, readers))
}

/// `--xdp-hook`: the targets resolved and checked, the object loaded by
/// xcap's own loader with an entry and/or exit program per target, then
/// attached.
fn start_xdp_hooks(
    cfg: &TraceConfig,
    program: &str,
    entry: bool,
    exit: bool,
    offs: &[u32; OFF_LEN],
    compiled: Compiled,
    reasons: HashMap<u32, String>,
) -> Result<TraceCapture, Error> {
    if [14, 15, 16, 17, 18, 20]
        .iter()
        .any(|&i| offs[i] == u32::MAX)
    {
        return Err(Error::Config(
            "--xdp-hook: the kernel BTF lacks fields of struct xdp_buff or xdp_rxq_info".into(),
        ));
    }
    if cfg.who.is_some() {
        return Err(Error::Config(
            "--xdp-hook has no socket to take the process from (XDP runs before the stack): attribution and process filters work at TC and the kernel's tracing hooks".into(),
        ));
    }
    let targets = xdp_hook::resolve(program)?;
    let snaplen = cfg.snaplen.to_ne_bytes();
    let offs_bytes: Vec<u8> = offs.iter().flat_map(|o| o.to_ne_bytes()).collect();
    let entry_counts = u32::from(entry).to_ne_bytes();
    let no_stack = 0u32.to_ne_bytes();
    let maps = crate::object::Maps::create(
        &compiled.elf,
        &[
            (abi::GLOBAL_SNAPLEN, &snaplen[..]),
            (GLOBAL_OFFSETS, &offs_bytes[..]),
            (GLOBAL_STACK, &no_stack[..]),
            (GLOBAL_XDP_ENTRY_COUNTS, &entry_counts[..]),
        ],
        perf::page_size() as u32,
        made_maps()?,
        &[],
    )?;
    let bodies: Vec<&[cbpf2ebpf::ebpf::Insn]> = compiled.bodies.iter().map(Vec::as_slice).collect();
    let sides: Vec<(&str, u16, &str)> = [
        (entry, XDP_ENTRY_PROGRAM, HOOK_XDP_ENTRY, "entry"),
        (exit, XDP_EXIT_PROGRAM, HOOK_XDP_EXIT, "exit"),
    ]
    .into_iter()
    .filter(|s| s.0)
    .map(|(_, prog, id, side)| (prog, id, side))
    .collect();
    // Every program loads before any attaches.
    let mut loaded = Vec::new();
    let mut hooks = Vec::new();
    for t in &targets {
        for &(prog, id, side) in &sides {
            loaded.push(xdp_hook::load(&maps, prog, t, &bodies)?);
            hooks.push(AttachedHook {
                name: format!("xdp-{side}:{}", t.name),
                description: format!(
                    "{} on XDP {} ({side}{})",
                    if side == "entry" { "fentry" } else { "fexit" },
                    t.describe(),
                    if side == "exit" {
                        ", with its verdict"
                    } else {
                        ""
                    }
                ),
                id,
                code: if targets.len() > 1 {
                    t.code.clone()
                } else {
                    None
                },
            });
        }
    }
    let mut cap = start_reading(cfg, maps, loaded, hooks, reasons, false, compiled.sizes)?;
    // Attach; on error `cap` is dropped, which detaches what was attached.
    let per_target = sides.len();
    for i in 0..cap.hooks.len() {
        let link = xdp_hook::attach(cap.programs.loaded[i].as_fd(), &targets[i / per_target])?;
        cap.links.push(Box::new(link));
    }
    Ok(cap)
}

/// Which hook a record belongs to: its hook id and, for one of several
/// hooked XDP programs, the program's code (`TraceHdr::location` is the
/// hooked function's address).
struct HookKey {
    id: u16,
    code: Option<std::ops::Range<u64>>,
}

impl HookKey {
    fn of(h: &AttachedHook) -> HookKey {
        HookKey {
            id: h.id,
            code: h.code.clone(),
        }
    }

    fn matches(&self, id: u16, location: u64) -> bool {
        self.id == id && self.code.as_ref().is_none_or(|c| c.contains(&location))
    }
}

impl Drop for TraceCapture {
    fn drop(&mut self) {
        self.detach();
        crate::join_readers(&mut self.rx, &mut self.readers);
    }
}

/// The one reader of every perf buffer; rounds as the live capture's
/// reader (`crate::reader`): note every buffer's head, drain each up to
/// it, hand the round over sorted by time.
fn reader(
    mut rings: Vec<perf::PerfRing>,
    tx: SyncSender<Vec<TracePacket>>,
    shared: Arc<Shared>,
    keys: Vec<HookKey>,
    tai_offset: i64,
    poll_ms: i32,
) {
    let fds: Vec<std::os::fd::RawFd> = rings.iter().map(perf::PerfRing::fd).collect();
    loop {
        let last = shared.draining.load(Ordering::Acquire);
        perf::wait_any_readable(&fds, shared.stop_fd(), if last { 0 } else { poll_ms });
        let heads: Vec<u64> = rings.iter().map(perf::PerfRing::head_now).collect();
        let mut batch = Vec::new();
        let mut lost = 0u64;
        for (ring, head) in rings.iter_mut().zip(heads) {
            ring.drain_to(head, |r| match r {
                perf::Record::Lost(n) => lost += n,
                perf::Record::Sample(raw) => {
                    if let Some(p) = parse(raw, &keys, tai_offset) {
                        batch.push(p);
                    }
                }
            });
        }
        if lost > 0 {
            shared.perf_lost.fetch_add(lost, Ordering::Relaxed);
        }
        batch.sort_by_key(|p| p.ts_ns);
        if !batch.is_empty() && tx.send(batch).is_err() {
            return;
        }
        if last {
            return;
        }
    }
}

/// One sample: a [`TraceHdr`], then the bytes `bpf_skb_output` (or
/// `bpf_xdp_output`) copied from the packet.
fn parse(raw: &[u8], keys: &[HookKey], tai_offset: i64) -> Option<TracePacket> {
    let h: TraceHdr = abi::read(raw)?;
    let caplen = h.caplen as usize;
    let pre_len = (h.pre_len as usize).min(MAX_PRE).min(caplen);
    let skip = h.skip as usize;
    let hook = keys
        .iter()
        .position(|k| k.matches(h.hook, h.location))
        .unwrap_or(0);
    let link = if h.link == LINK_EN10MB {
        LinkType::Ethernet
    } else {
        LinkType::Raw
    };
    let n = h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len());
    let mut data = Vec::with_capacity(caplen);
    data.extend_from_slice(&h.pre[..pre_len]);
    let rest = &raw[TRACE_HDR_BYTES..];
    let from = skip.min(rest.len());
    let to = (skip + caplen - pre_len).min(rest.len());
    data.extend_from_slice(&rest[from..to]);
    Some(TracePacket {
        ts_ns: (h.ts_ns as i64 + tai_offset) as u64,
        skb: h.skb,
        location: h.location,
        wirelen: h.wirelen,
        ifindex: h.ifindex,
        reason: h.reason,
        netns: h.netns,
        pid: h.pid,
        tid: h.tid,
        cpu: h.cpu,
        hook,
        link,
        comm: String::from_utf8_lossy(&h.comm[..n]).into_owned(),
        owner: crate::attribution::owner_from(h.owner_state, &h.owner),
        data,
        stack_id: h.stack_id,
        verdict: (h.hook == HOOK_XDP_EXIT).then_some(h.reason),
    })
}

/// Kernel symbols from `/proc/kallsyms`, for drop locations.
pub struct Kallsyms {
    syms: Vec<(u64, String)>,
}

impl Kallsyms {
    pub fn load() -> Kallsyms {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_owned()))
            })
            .collect();
        syms.sort_unstable();
        Kallsyms { syms }
    }

    /// `func+0xoff`, or the address.
    pub fn resolve(&self, addr: u64) -> String {
        match self.syms.partition_point(|(a, _)| *a <= addr) {
            0 => format!("{addr:#x}"),
            i => {
                let (a, n) = &self.syms[i - 1];
                format!("{n}+{:#x}", addr - a)
            }
        }
    }
}

/// The inode of this process's network namespace.
pub fn own_netns() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino() as u32)
        .unwrap_or(0)
}

/// A pcapng file for tracing captures: one interface block per (hook, link
/// type), written up front (`--xdp-hook`'s hooks capture Ethernet only);
/// each packet carries a comment with its metadata and `epb_packetid` (the
/// skb address; `--xdp-hook`: the id its entry and exit copies share), and
/// exit copies of `--xdp-hook` their verdict (`epb_verdict`).
pub struct TraceWriter<W: Write> {
    out: W,
    /// The interface blocks, in order.
    interfaces: Vec<(usize, LinkType)>,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(mut out: W, snaplen: u32, filter: &str, hooks: &[AttachedHook]) -> io::Result<Self> {
        pcapng::section_header(&mut out)?;
        let mut interfaces = Vec::new();
        for (i, h) in hooks.iter().enumerate() {
            let links: &[LinkType] = if h.on_xdp_program() {
                &[LinkType::Ethernet]
            } else {
                &[LinkType::Ethernet, LinkType::Raw]
            };
            for &link in links {
                let what = match link {
                    LinkType::Ethernet => "from the MAC header",
                    LinkType::Raw => "from the network header",
                };
                pcapng::interface_description(
                    &mut out,
                    &pcapng::Interface {
                        link_type: link.pcap_linktype(),
                        snaplen,
                        name: &format!("{}:{}", h.name, link.name()),
                        description: &format!("xcap {}, {what}", h.description),
                        filter,
                    },
                )?;
                interfaces.push((i, link));
            }
        }
        Ok(TraceWriter { out, interfaces })
    }

    /// Writes one packet with `comment` (the metadata, as text).
    pub fn write(&mut self, p: &TracePacket, comment: &str) -> io::Result<()> {
        let id = self
            .interfaces
            .iter()
            .position(|&(h, l)| h == p.hook && l == p.link)
            .unwrap_or(0) as u32;
        let packet_id = p.skb.to_le_bytes();
        let verdict = p.verdict.map(|v| pcapng::xdp_verdict(u64::from(v)));
        let mut opts: Vec<(u16, &[u8])> = vec![
            (pcapng::OPT_COMMENT, comment.as_bytes()),
            (pcapng::EPB_PACKETID, &packet_id),
        ];
        if let Some(v) = &verdict {
            opts.push((pcapng::EPB_VERDICT, v));
        }
        pcapng::enhanced_packet(
            &mut self.out,
            &pcapng::Packet {
                interface: id,
                ts_ns: p.ts_ns,
                wirelen: p.wirelen,
                data: &p.data,
            },
            &opts,
        )
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What a trampoline program on a kernel function is called.
fn trampoline_kind(exit: bool) -> &'static str {
    if exit {
        "fexit"
    } else {
        "fentry"
    }
}

impl Planned {
    /// How errors name the hook (`tp_btf skb:kfree_skb`).
    fn desc(&self) -> &str {
        match self {
            Planned::Tp { desc, .. } | Planned::Fentry { desc, .. } => desc,
        }
    }
}
