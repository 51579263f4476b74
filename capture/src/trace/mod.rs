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

mod filters;
mod hooks;
mod kallsyms;
mod offsets;
mod reader;
mod start;
mod writer;
pub mod xdp_hook;

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use btf::Btf;
use capture_abi as abi;
use capture_abi::trace::{HOOK_FEXIT, HOOK_XDP_ENTRY, HOOK_XDP_EXIT, STACKS_MAP};

use self::filters::compile_filters;
use self::hooks::{plan, xdp_programs};
use self::offsets::offsets;
use self::start::{start_kernel_hooks, start_xdp_hooks};
use crate::shared::{check_privileges, detach_links, join_readers, recv_batch, Shared};
use crate::{sys, Error, Stats};

pub use kallsyms::Kallsyms;
pub use writer::{add_interfaces, write_pcapng, InterfaceKey, TraceWriter};

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
    /// XDP programs (`--xdp-hook PROG`, see [`xdp_hook`]): each
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

impl TraceCapture {
    pub fn start(cfg: &TraceConfig) -> Result<TraceCapture, Error> {
        Self::start_on_this_kernel(cfg).map_err(crate::kernel::explain)
    }

    fn start_on_this_kernel(cfg: &TraceConfig) -> Result<TraceCapture, Error> {
        check_privileges()?;
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
        recv_batch(self.rx.as_ref(), timeout)
    }

    /// Detaches every program; the readers drain their rings and stop.
    pub fn detach(&mut self) {
        detach_links(&mut self.detached, &mut self.links, &self.shared);
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats(self.programs.maps.map(abi::COUNTERS_MAP))
    }
}

impl Drop for TraceCapture {
    fn drop(&mut self) {
        self.detach();
        join_readers(&mut self.rx, &mut self.readers);
    }
}

/// The inode of this process's network namespace.
pub fn own_netns() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino() as u32)
        .unwrap_or(0)
}
