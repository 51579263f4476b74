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
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use capture_abi as abi;
use capture_abi::trace::{
    TraceHdr, Tracepoint, FENTRY_PROGRAM_PREFIX, GLOBAL_OFFSETS, GLOBAL_STACK, HOOK_FENTRY,
    LINK_EN10MB, MAX_FENTRY_ARG, MAX_PRE, OFF_CONSUME_SKB_ARGS, OFF_DEV_IFINDEX, OFF_DEV_ND_NET,
    OFF_DEV_TYPE, OFF_KFREE_SKB_ARGS, OFF_LEN, OFF_NET_NS_INUM, OFF_SKB_DATA, OFF_SKB_DATA_LEN,
    OFF_SKB_DEV, OFF_SKB_HEAD, OFF_SKB_LEN, OFF_SKB_MAC_HEADER, OFF_SKB_NETWORK_HEADER, OFF_VALID,
    STACKS_MAP, STUB_L2, STUB_L3, TRACEPOINTS, TRACE_HDR_BYTES,
};
use cbpf2ebpf::{libpcap, translate, Hook, Mode, Options};

use btf::Btf;

use crate::object::{Load, Object, Settings};
use crate::{cpus, pcapng, perf, programs, sys, Error, Shared, Stats};

/// Distinct stacks kept with `--stack` (the object has one entry).
pub const STACKS_MAX: u32 = 4096;
/// Frames in a stack map value (`PERF_MAX_STACK_DEPTH`, as capture-bpf's
/// map declares it).
const STACK_DEPTH: usize = 127;
/// Bytes of the live programs' ring template when a tracing capture
/// creates their maps: one page, the smallest ring.
const RING_BYTES_UNUSED: u32 = 4096;

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
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cpu: u32,
    /// The skb's address.
    pub skb: u64,
    pub wirelen: u32,
    pub data: Vec<u8>,
    /// `bpf_get_stackid()`: an id in the stack map, a negative errno when
    /// the kernel could not record the stack, -1 when stacks are off.
    pub stack_id: i32,
}

/// A running tracing capture.
pub struct TraceCapture {
    object: Object,
    /// One per program: closing it detaches the program.
    links: Vec<OwnedFd>,
    readers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    rx: Option<Receiver<Vec<TracePacket>>>,
    hooks: Vec<AttachedHook>,
    detached: bool,
    reasons: HashMap<u32, String>,
    /// Stacks were asked for ([`TraceConfig::stack`]).
    stack: bool,
    /// cBPF and eBPF sizes, for `-v`: (link type, cBPF, eBPF).
    pub filters: Vec<(LinkType, usize, usize)>,
}

/// A resolved hook, ready to load.
enum Planned {
    Tp {
        name: &'static str,
        prog: &'static str,
        id: u16,
        desc: String,
    },
    Fentry {
        function: String,
        prog: String,
        desc: String,
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
            TraceHook::Fentry { function, arg } => {
                fentries += 1;
                if fentries > 1 {
                    return Err(Error::Config(
                        "only one --fentry function per capture (for now)".into(),
                    ));
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
                out.push(Planned::Fentry {
                    function: function.clone(),
                    prog: format!("{FENTRY_PROGRAM_PREFIX}{n}"),
                    desc: format!("fentry {function} (argument {n}, {})", params[n].name),
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
    Ok(o)
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

    /// The steps of a start, in order: everything is checked and loaded
    /// before anything attaches; on an error, what was made so far is
    /// dropped (links closed, readers stopped).
    fn start_on_this_kernel(cfg: &TraceConfig) -> Result<TraceCapture, Error> {
        crate::check_privileges()?;
        if !(1..=262_144).contains(&cfg.snaplen) {
            return Err(Error::Config(format!("invalid snaplen {}", cfg.snaplen)));
        }
        // The kernel's BTF, parsed once: hooks, field offsets, drop
        // reasons and the programs' attach targets all come from it.
        let btf = Btf::vmlinux().map_err(Error::Config)?;
        let planned = plan(&btf, &cfg.hooks)?;
        let offs = offsets(&btf)?;
        let reasons = drop_reasons(&btf);
        let filters = compile_filters(cfg)?;
        let spliced = programs::splice(&[
            (STUB_L2, &filters.ethernet[..]),
            (STUB_L3, &filters.raw[..]),
        ])?;
        let mut object = create_object(cfg, &spliced, &offs)?;
        let hooks = load_programs(&mut object, &btf, &planned)?;
        let reader = start_reader(cfg, &object, &hooks)?;
        let mut cap = TraceCapture {
            object,
            links: Vec::new(),
            readers: reader.threads,
            shared: reader.shared,
            rx: Some(reader.rx),
            hooks,
            detached: false,
            reasons,
            stack: cfg.stack,
            filters: filters.sizes,
        };
        cap.attach(&planned)?;
        Ok(cap)
    }

    /// Attaches every program; on an error the caller drops `self`, which
    /// detaches what was attached.
    fn attach(&mut self, planned: &[Planned]) -> Result<(), Error> {
        for p in planned {
            let (prog, desc) = match p {
                Planned::Tp { prog, desc, .. } => (*prog, desc),
                Planned::Fentry { prog, desc, .. } => (prog.as_str(), desc),
            };
            let program = self
                .object
                .program(prog)
                .ok_or_else(|| Error::Load(format!("no program {prog}")))?;
            let link = sys::raw_tracepoint_open(program, None).map_err(|e| Error::Attach {
                iface: "kernel".into(),
                hook: desc.clone(),
                message: e.to_string(),
            })?;
            self.links.push(link);
        }
        Ok(())
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
            .object
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
        self.shared.stats(self.object.map(abi::COUNTERS_MAP))
    }
}

/// The names of `enum skb_drop_reason`'s values, without their prefix.
fn drop_reasons(btf: &Btf) -> HashMap<u32, String> {
    btf.enum_values("skb_drop_reason")
        .into_iter()
        .map(|(n, v)| {
            let short = n.strip_prefix("SKB_DROP_REASON_").unwrap_or(&n).to_owned();
            (v as u32, short)
        })
        .collect()
}

/// The filter for both link types, translated in probe mode.
struct Filters {
    /// For packets with a MAC header (EN10MB).
    ethernet: Vec<cbpf2ebpf::ebpf::Insn>,
    /// For packets from the network header (RAW).
    raw: Vec<cbpf2ebpf::ebpf::Insn>,
    /// (link type, cBPF, eBPF instructions), for `-v`.
    sizes: Vec<(LinkType, usize, usize)>,
}

/// Compiles the expression for EN10MB and RAW (a link type libpcap
/// refuses it for matches nothing there) and translates both.
fn compile_filters(cfg: &TraceConfig) -> Result<Filters, Error> {
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
    Ok(Filters {
        sizes: vec![
            (LinkType::Ethernet, l2.len(), f2.len()),
            (LinkType::Raw, l3.len(), f3.len()),
        ],
        ethernet: f2,
        raw: f3,
    })
}

/// Creates the object's maps, the settings and field offsets in
/// `.rodata`, the stack map sized when stacks are asked for.
fn create_object(
    cfg: &TraceConfig,
    spliced: &injector::Spliced,
    offs: &[u32; OFF_LEN],
) -> Result<Object, Error> {
    let snaplen = cfg.snaplen.to_ne_bytes();
    let stack = u32::from(cfg.stack).to_ne_bytes();
    let offs: Vec<u8> = offs.iter().flat_map(|o| o.to_ne_bytes()).collect();
    let stacks_max: &[(&str, u32)] = if cfg.stack {
        &[(STACKS_MAP, STACKS_MAX)]
    } else {
        &[]
    };
    Object::create(
        &spliced.elf,
        Settings {
            globals: &[
                (abi::GLOBAL_SNAPLEN, &snaplen),
                (GLOBAL_OFFSETS, &offs),
                (GLOBAL_STACK, &stack),
            ],
            max_entries: stacks_max,
            // The live programs' rings: never used here, so the
            // smallest a ring can be.
            ring_bytes: RING_BYTES_UNUSED,
            ..Settings::default()
        },
    )
}

/// Loads each planned program with its attach target's BTF id; the
/// hooks, as the records will name them.
fn load_programs(
    object: &mut Object,
    btf: &Btf,
    planned: &[Planned],
) -> Result<Vec<AttachedHook>, Error> {
    let mut hooks = Vec::new();
    for p in planned {
        match p {
            Planned::Tp {
                name,
                prog,
                id,
                desc,
            } => {
                let target = btf.tracepoint_id(name).ok_or_else(|| {
                    Error::Load(format!("{desc}: the kernel BTF has no btf_trace_{name}"))
                })?;
                object
                    .load(&Load {
                        name: prog,
                        attach_btf_id: target,
                        ..Load::default()
                    })
                    .map_err(|e| Error::Load(format!("{desc}: {e}")))?;
                hooks.push(AttachedHook {
                    name: (*name).to_owned(),
                    description: desc.clone(),
                    id: *id,
                });
            }
            Planned::Fentry {
                function,
                prog,
                desc,
            } => {
                let target = btf.function_id(function).ok_or_else(|| {
                    Error::Load(format!("{desc}: the kernel BTF has no function {function}"))
                })?;
                object
                    .load(&Load {
                        name: prog,
                        attach_btf_id: target,
                        ..Load::default()
                    })
                    .map_err(|e| {
                        if e.errno == Some(libc::EPERM) {
                            // Seen on Linux 6.18 with lockdown=integrity:
                            // every trampoline program (fentry, fexit,
                            // fmod_ret, lsm) is refused before the
                            // verifier runs, while tp_btf loads.
                            Error::Load(format!(
                                "{desc}: the kernel refuses fentry programs (BPF_PROG_LOAD: Operation not permitted, no verifier log; kernel lockdown or a security policy forbids BPF trampolines); use --trace instead"
                            ))
                        } else {
                            Error::Load(format!("{desc}: {e}"))
                        }
                    })?;
                hooks.push(AttachedHook {
                    name: format!("fentry:{function}"),
                    description: desc.clone(),
                    id: HOOK_FENTRY,
                });
            }
        }
    }
    Ok(hooks)
}

/// The perf buffers, one per online CPU, and their reader.
struct Reader {
    shared: Arc<Shared>,
    rx: Receiver<Vec<TracePacket>>,
    threads: Vec<JoinHandle<()>>,
}

/// Opens the perf buffers and starts their reader, before anything is
/// attached.
fn start_reader(
    cfg: &TraceConfig,
    object: &Object,
    hooks: &[AttachedHook],
) -> Result<Reader, Error> {
    let shared = Shared::new()?;
    let map_fd = object
        .map(abi::EVENTS_MAP)
        .ok_or_else(|| Error::Load(format!("no map {}", abi::EVENTS_MAP)))?
        .as_raw_fd();
    let cpus = cpus::online()?;
    let (tx, rx) = mpsc::sync_channel::<Vec<TracePacket>>(cfg.queue_batches.max(1));
    let waker_tx = tx.clone();
    *shared.wake_consumer() = Some(Box::new(move || {
        let _ = waker_tx.try_send(Vec::new());
    }));
    let tai_offset = crate::tai_to_realtime_ns();
    let ids: Vec<u16> = hooks.iter().map(|h| h.id).collect();
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
        .spawn(move || reader(rings, tx, reader_shared, ids, tai_offset, poll_ms))
        .map_err(|e| Error::Buffer(e.to_string()))?];
    Ok(Reader {
        shared,
        rx,
        threads: readers,
    })
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
    ids: Vec<u16>,
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
                    if let Some(p) = parse(raw, &ids, tai_offset) {
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

/// One sample: a [`TraceHdr`], then the bytes `bpf_skb_output` copied
/// from `skb->data`.
fn parse(raw: &[u8], ids: &[u16], tai_offset: i64) -> Option<TracePacket> {
    let h: TraceHdr = abi::read(raw)?;
    let caplen = h.caplen as usize;
    let pre_len = (h.pre_len as usize).min(MAX_PRE).min(caplen);
    let skip = h.skip as usize;
    let hook = ids.iter().position(|&i| i == h.hook).unwrap_or(0);
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
        data,
        stack_id: h.stack_id,
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
/// type), written up front; each packet carries a comment with its metadata
/// and `epb_packetid` (the skb address).
pub struct TraceWriter<W: Write> {
    out: W,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(mut out: W, snaplen: u32, filter: &str, hooks: &[AttachedHook]) -> io::Result<Self> {
        pcapng::section_header(&mut out)?;
        for h in hooks {
            for link in [LinkType::Ethernet, LinkType::Raw] {
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
            }
        }
        Ok(TraceWriter { out })
    }

    /// Writes one packet with `comment` (the metadata, as text).
    pub fn write(&mut self, p: &TracePacket, comment: &str) -> io::Result<()> {
        let id = (p.hook * 2 + usize::from(p.link == LinkType::Raw)) as u32;
        pcapng::enhanced_packet(
            &mut self.out,
            &pcapng::Packet {
                interface: id,
                ts_ns: p.ts_ns,
                wirelen: p.wirelen,
                data: &p.data,
            },
            &[
                (pcapng::OPT_COMMENT, comment.as_bytes()),
                (pcapng::EPB_PACKETID, &p.skb.to_le_bytes()),
            ],
        )
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
