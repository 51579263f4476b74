//! Capture at tracing hooks (`capture::trace`): tracepoints
//! (`kfree_skb` with the drop reason, `consume_skb`, `netif_receive_skb`,
//! `net_dev_queue`, `net_dev_xmit`), `--fentry FUNC` and `--fexit FUNC`
//! (its return value shown as `ret N`), whose `struct sk_buff *` argument
//! is found in the kernel BTF.
//!
//! Packets with a MAC header are captured from it (link type EN10MB),
//! others from the network header (RAW); the filter is compiled for each.
//! `-w` always writes pcapng (one file may mix both link types): one
//! interface block per (hook, link type), each packet with a comment (hook,
//! drop reason, interface, network namespace, the task running when the
//! hook fired as `task_pid`, `task_tid`, `task_comm`) and its skb address
//! as `epb_packetid`.
//!
//! With `--who`, `-v` or a process filter, each packet is attributed from
//! its socket as at TC (`crate::source::who`): the line gets the socket
//! owner's `[pid=… tid=… comm=… cgroup=… netns=…]` (or why there is none)
//! before the running task's `[task comm … pid …]`, and the comment the
//! same text at its end.
//!
//! `--xdp-hook PROG` hooks an XDP program already loaded (fentry and fexit
//! on it): lines and comments name the hook (`xdp-entry:NAME`,
//! `xdp-exit:NAME`), the verdict at exit and the packet id that a
//! packet's entry and exit copies share; pcapng records carry the id as
//! `epb_packetid` and the verdict as `epb_verdict`.
//!
//! `--stack` records each packet's kernel stack (`bpf_get_stackid`),
//! symbolized with `/proc/kallsyms`: one `    at func+0xoff` line per frame
//! after the packet line, innermost first, and `stack=f1,f2,...` in the
//! pcapng comment.

use std::fmt::Write as _;
use std::io;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::{anyhow, Result};
use capture::trace::{Kallsyms, LinkType, TraceCapture, TraceConfig, TracePacket, TraceWriter};
use capture::Waker;

use crate::link::Link;
use crate::plan::{self, Hook};
use crate::print::Line;
use crate::sink::{Counters, Stream};
use crate::source::who::Describe;
use crate::source::Source;

/// The capture library's configuration for the plan.
pub fn config(plan: &plan::Capture) -> TraceConfig {
    let hooks = plan
        .hooks
        .iter()
        .filter_map(|h| match h {
            Hook::Trace(hook) => Some(hook.clone()),
            Hook::Xdp(_) | Hook::Tc => None,
        })
        .collect();
    TraceConfig {
        hooks,
        expression: plan.filter.clone(),
        snaplen: plan.snaplen,
        perf_pages: plan.buffers.pages,
        wakeup: plan.buffers.wakeup,
        poll_ms: plan.buffers.poll_ms,
        stack: plan.stack,
        who: plan.who.as_deref().cloned(),
        ..TraceConfig::default()
    }
}

/// A capture at tracing hooks, attached.
pub struct Trace {
    cap: TraceCapture,
    meta: Meta,
    filter: String,
    snaplen: u32,
    verbose: bool,
    /// Interface hooks run too ([`super::followed`]): each line shows the
    /// packet's id.
    followed: bool,
    /// `--who` or `-v` with attribution: lines name each packet's process.
    show_who: bool,
    /// Names processes in lines and pcapng comments.
    describe: Describe,
}

impl Trace {
    /// Loads and attaches the programs; loads the kernel's symbols when
    /// lines or comments will name code addresses.
    pub fn start(config: &TraceConfig, plan: &plan::Capture) -> Result<Trace> {
        let cap = TraceCapture::start(config).map_err(|e| anyhow!("{e}"))?;
        let names_code = plan.stack
            || cap
                .hooks()
                .iter()
                .any(|h| h.name == "kfree_skb" || h.name == "consume_skb");
        let meta = Meta {
            own_netns: capture::trace::own_netns(),
            kallsyms: names_code.then(Kallsyms::load),
        };
        Ok(Trace {
            cap,
            meta,
            filter: plan.filter.clone(),
            snaplen: plan.snaplen,
            verbose: plan.verbose,
            followed: plan.on_interfaces(),
            show_who: plan.show_who,
            describe: Describe::new(),
        })
    }

    /// The attached hooks, in order.
    pub fn hooks(&self) -> &[capture::trace::AttachedHook] {
        self.cap.hooks()
    }

    /// The hook's name and, at `kfree_skb`, the drop reason's name: the
    /// text line and the pcapng comment both start with them.
    fn hook_and_reason(&self, p: &TracePacket) -> (&str, Option<String>) {
        let hook = self
            .cap
            .hooks()
            .get(p.hook)
            .map(|h| h.name.as_str())
            .unwrap_or("?");
        let reason = self
            .cap
            .has_drop_reason(p.hook)
            .then(|| self.cap.reason_name(p.reason));
        (hook, reason)
    }

    /// Whether the packet comes from `--xdp-hook` (no task, a verdict at
    /// exit, a packet id shared by its entry and exit copies).
    fn is_from_xdp_program(&self, p: &TracePacket) -> bool {
        self.cap
            .hooks()
            .get(p.hook)
            .is_some_and(|h| h.on_xdp_program())
    }

    /// `hook=... verdict=XDP_TX ifindex=... id=...`: the comment of a
    /// packet from `--xdp-hook`.
    fn xdp_comment(&self, p: &TracePacket) -> String {
        let (hook, _) = self.hook_and_reason(p);
        let mut c = format!("hook={hook}");
        if let Some(v) = p.verdict {
            let _ = write!(c, " verdict={}", verdict_name(v));
        }
        let _ = write!(
            c,
            " ifindex={} ifname={} netns={} cpu={} link={} id={:#x}",
            p.ifindex,
            self.meta.iface(p).replace(' ', "_"),
            p.netns,
            p.cpu,
            p.link.name(),
            p.skb
        );
        c
    }

    /// `xdp-exit:prog verdict XDP_TX veth0 EN10MB len 98 <summary> [id
    /// 0x...]`: the line of a packet from `--xdp-hook`.
    fn xdp_line<'p>(&self, p: &'p TracePacket) -> Line<'p> {
        let (hook, _) = self.hook_and_reason(p);
        let mut line = Line::at_ns(p.ts_ns, link(p), &p.data, p.wirelen);
        line.before.push_str(hook);
        if let Some(v) = p.verdict {
            let _ = write!(line.before, " verdict {}", verdict_name(v));
        }
        let iface = self.meta.iface(p);
        let _ = write!(line.before, " {iface} {} len {} ", p.link.name(), p.wirelen);
        let _ = write!(line.after, " [id {:#x}", p.skb);
        if self.verbose {
            let _ = write!(
                line.after,
                " cpu {} netns {} caplen {}",
                p.cpu,
                p.netns,
                p.data.len()
            );
        }
        line.after.push(']');
        line
    }

    /// `hook=... reason=... ifindex=...`: what a pcapng packet's comment
    /// says of it.
    pub fn comment(&self, p: &TracePacket) -> String {
        if self.is_from_xdp_program(p) {
            return self.xdp_comment(p);
        }
        let (hook, reason) = self.hook_and_reason(p);
        let mut c = format!("hook={hook}");
        if let Some(r) = &reason {
            let _ = write!(c, " reason={r}");
        }
        if self.cap.has_return_value(p.hook) {
            let _ = write!(c, " ret={}", p.reason as i32);
        }
        let _ = write!(
            c,
            " ifindex={} ifname={} netns={} task_pid={} task_tid={} task_comm={} cpu={} link={}",
            p.ifindex,
            self.meta.iface(p).replace(' ', "_"),
            p.netns,
            p.pid,
            p.tid,
            p.comm,
            p.cpu,
            p.link.name()
        );
        if let Some(l) = self.meta.location(p) {
            let _ = write!(c, " location={l}");
        }
        if let Some(frames) = self.meta.stack(&self.cap, p) {
            let _ = write!(c, " stack={}", frames.join(","));
        }
        if let Some(who) = self.describe.owner(&p.owner) {
            let _ = write!(c, " {who}");
        }
        c
    }
}

impl Source for Trace {
    type Packet = TracePacket;
    type File = TraceWriter<Stream>;

    const SEEN: &'static str = "skbs";
    const NEWLINE_ON_SIGNAL: bool = false;

    fn waker(&self) -> Waker {
        self.cap.waker()
    }

    fn open_file(&self, stream: Stream) -> io::Result<Self::File> {
        TraceWriter::new(stream, self.snaplen, &self.filter, self.cap.hooks())
    }

    fn announce(&self) {
        for h in self.cap.hooks() {
            if h.on_xdp_program() {
                eprintln!(
                    "xcap: hooking with {}, link-type EN10MB, snapshot length {} bytes",
                    h.description, self.snaplen
                );
                continue;
            }
            eprintln!(
                "xcap: tracing at {} (link-type EN10MB from the MAC header, RAW otherwise), snapshot length {} bytes",
                h.description, self.snaplen
            );
        }
        if self.verbose {
            for (l, c, e) in &self.cap.filters {
                eprintln!(
                    "xcap: filter {:?} for {}: {c} cBPF instructions -> {e} eBPF instructions (probe mode)",
                    self.filter,
                    l.name()
                );
            }
        }
    }

    fn recv(&self, timeout: Duration) -> Result<Vec<TracePacket>, RecvTimeoutError> {
        self.cap.recv_timeout(timeout)
    }

    /// `kfree_skb reason NO_SOCKET veth0 EN10MB len 98 <summary> [task
    /// comm ping pid 42]`, then the stack's frames.
    fn time_ns(&self, p: &TracePacket) -> u64 {
        p.ts_ns
    }

    fn line<'p>(&self, p: &'p TracePacket) -> Line<'p> {
        if self.is_from_xdp_program(p) {
            return self.xdp_line(p);
        }
        let (hook, reason) = self.hook_and_reason(p);
        let mut line = Line::at_ns(p.ts_ns, link(p), &p.data, p.wirelen);
        line.before.push_str(hook);
        if let Some(r) = &reason {
            let _ = write!(line.before, " reason {r}");
        }
        if self.cap.has_return_value(p.hook) {
            let _ = write!(line.before, " ret {}", p.reason as i32);
        }
        let iface = self.meta.iface(p);
        let _ = write!(line.before, " {iface} {} len {} ", p.link.name(), p.wirelen);
        if self.followed {
            let _ = write!(line.after, " [id {:#x}]", p.skb);
        }
        if self.show_who {
            if let Some(who) = self.describe.owner(&p.owner) {
                let _ = write!(line.after, " [{who}]");
            }
        }
        let _ = write!(line.after, " [task comm {} pid {}", p.comm, p.pid);
        if self.verbose {
            let _ = write!(
                line.after,
                " tid {} cpu {} netns {} skb {:#x} caplen {}",
                p.tid,
                p.cpu,
                p.netns,
                p.skb,
                p.data.len()
            );
            if let Some(l) = self.meta.location(p) {
                let _ = write!(line.after, " at {l}");
            }
        }
        line.after.push(']');
        for frame in self.meta.stack(&self.cap, p).unwrap_or_default() {
            let _ = writeln!(line.below, "    at {frame}");
        }
        line
    }

    fn write_record(&self, file: &mut Self::File, p: &TracePacket) -> io::Result<()> {
        file.write(p, &self.comment(p))
    }

    fn detach(&mut self) {
        self.cap.detach()
    }

    fn stats(&self) -> Counters {
        self.cap.stats().into()
    }

    fn close(self) -> Option<String> {
        None
    }
}

/// `XDP_TX`, or the number of a verdict XDP does not define.
fn verdict_name(v: u32) -> String {
    match v {
        0 => "XDP_ABORTED".into(),
        1 => "XDP_DROP".into(),
        2 => "XDP_PASS".into(),
        3 => "XDP_TX".into(),
        4 => "XDP_REDIRECT".into(),
        n => n.to_string(),
    }
}

/// How the printer reads a traced packet.
fn link(p: &TracePacket) -> Link {
    match p.link {
        LinkType::Ethernet => Link::Ethernet,
        LinkType::Raw => Link::Raw,
    }
}

/// What names interfaces and code addresses in lines and comments.
struct Meta {
    own_netns: u32,
    kallsyms: Option<Kallsyms>,
}

impl Meta {
    /// `veth0` when the packet's namespace is ours, else `ifindex 2`.
    fn iface(&self, p: &TracePacket) -> String {
        if p.ifindex == 0 {
            return "-".into();
        }
        if p.netns == 0 || p.netns == self.own_netns {
            if let Some(n) = ifname(p.ifindex) {
                return n;
            }
        }
        format!("ifindex {}", p.ifindex)
    }

    fn location(&self, p: &TracePacket) -> Option<String> {
        if p.location == 0 {
            return None;
        }
        Some(match &self.kallsyms {
            Some(k) => k.resolve(p.location),
            None => format!("{:#x}", p.location),
        })
    }

    /// The packet's kernel stack, symbolized (innermost first, from the
    /// function that hit the hook); `None` without `--stack`; one `<...>`
    /// entry when the kernel could not record it.
    fn stack(&self, cap: &TraceCapture, p: &TracePacket) -> Option<Vec<String>> {
        Some(match cap.stack(p)? {
            // The first frames are xcap's program and the tracepoint's
            // bpf_trace_runN: left out, the stack starts at the hook.
            Ok(ips) => ips
                .into_iter()
                .map(|ip| match &self.kallsyms {
                    Some(k) => k.resolve(ip),
                    None => format!("{ip:#x}"),
                })
                .skip_while(|f| f.starts_with("bpf_prog_") || f.starts_with("bpf_trace_run"))
                .collect(),
            Err(e) => vec![format!("<{e}>")],
        })
    }
}

/// The interface's name in our network namespace.
fn ifname(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}
