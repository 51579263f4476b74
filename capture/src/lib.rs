//! # xcap-capture (`capture`)
//!
//! Live capture with a tcpdump filter run inside the kernel, at XDP or TC.
//!
//! [`Capture::start`] does, in order:
//! 1. checks privileges and resolves the interfaces;
//! 2. for TC, and an expression that compiles on a dead handle, starts
//!    making the TCX links on another thread, with a program that does
//!    nothing (each link waits for an RCU grace period in the kernel; this
//!    way they wait while the next steps run); that thread first asks
//!    whether the kernel has TCX at all ([`link::have_tcx`]), and makes no
//!    link where it has not;
//! 3. compiles the expression with libpcap on a live handle of the first
//!    interface (exactly the program tcpdump would give the kernel; see
//!    [`live_filter`]);
//! 4. translates it with `cbpf2ebpf` once per hook used (`Hook::Xdp` in
//!    direct mode, `Hook::TcIngress`/`Hook::TcEgress` in skb mode: they
//!    differ in what `inbound`/`outbound` and the VLAN loads read);
//! 5. splices the filters into the capture programs ([`programs`]) and loads its
//!    maps and programs ([`object`]), the snap length in `.rodata`;
//! 6. creates one BPF ring buffer per online CPU ([`ring`]), puts each in
//!    the programs' array of rings at its CPU's index, and starts the reader
//!    thread: in rounds, it notes where every ring's producers are, drains
//!    each up to there and hands the round's [`Packet`]s to the consumer
//!    sorted by time, through a bounded channel (a full channel stalls the
//!    reader, the rings fill, and the kernel counts the drops); when it
//!    found nothing it sleeps until a ring's next record (see [`ring`]);
//! 7. attaches with `BPF_LINK_CREATE` ([`link`]), or switches the links of
//!    step 2 to the capture programs with `BPF_LINK_UPDATE`: XDP native,
//!    falling back to generic when the driver has no native XDP (unless
//!    forced), never replacing an XDP program already there; TC through TCX
//!    links (first on ingress, last on egress, so xcap sees what tcpdump
//!    sees), which need no qdisc and leave qdiscs and tc filters alone.
//!    Links die with the process, so nothing stays attached, even after
//!    SIGKILL. Where the kernel has no TCX (before 6.6), or when asked
//!    ([`TcAttachChoice::Clsact`]), TC goes through direct-action cls_bpf
//!    filters on a clsact qdisc instead ([`clsact`]): first and last too
//!    (priorities 1 and 65535), removed at the end; a SIGKILL leaves them
//!    until the next such start removes them.
//!
//! The consumer takes [`Batch`]es with [`Capture::recv_timeout`], calls
//! [`Capture::detach`] when it wants to stop, keeps receiving until the
//! channel is closed (the readers drain their rings after the detach), and
//! reads the exact counters with [`Capture::stats`]. A [`Waker`] (from
//! [`Capture::waker`]) lets another thread, e.g. one that takes signals,
//! wake the consumer from a long wait.
//!
//! ```no_run
//! let cfg = capture::Config { interfaces: vec!["eth0".into()], expression: "tcp port 443".into(), ..Default::default() };
//! let mut cap = capture::Capture::start(&cfg)?;
//! while let Ok(batch) = cap.recv_timeout(std::time::Duration::from_millis(100)) {
//!     for p in &batch.packets { println!("{} bytes", p.wirelen); }
//!     # cap.detach();
//! }
//! # Ok::<(), capture::Error>(())
//! ```

pub mod attribution;
pub mod cgroups;
pub mod clsact;
pub mod cpus;
mod follow;
pub mod iface;
pub mod kernel;
pub mod link;
pub mod live_filter;
pub mod netlink;
pub mod netns;
pub mod object;
pub mod pcapng;
pub mod perf;
mod procs;
pub mod programs;
pub mod ring;
pub mod savefile;
mod sys;
pub mod trace;
pub mod xdp_hook;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use capture_abi::live::{self as live_abi, Hdr, DIR_OUT, HOOK_XDP};
use capture_abi::owner;
use cbpf2ebpf::Hook;

pub use follow::Followed;

/// Why a capture could not start. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: No such device exists")]
    NoSuchDevice(String),
    #[error("live capture needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (missing: {0})")]
    Privileges(String),
    /// libpcap's message.
    #[error("{0}")]
    Filter(String),
    #[error("{iface}: link type {linktype} is not supported (Ethernet only)")]
    LinkType { iface: String, linktype: String },
    #[error("cannot translate the filter for {hook}: {message}")]
    Translate { hook: &'static str, message: String },
    #[error("cannot load the capture programs: {0}")]
    Load(String),
    #[error("{0}: an XDP program is already attached; xcap does not replace it (use --tc, or hook the existing program with the XDP-chaining mode, tracked separately)")]
    XdpBusy(String),
    #[error("{iface}: cannot attach at {hook}: {message}")]
    Attach {
        iface: String,
        hook: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
    /// The kernel lacks something the programs need ([`kernel`]).
    #[error("{0}")]
    Kernel(String),
    /// Setting up clsact attachment (rtnetlink, the sweep of what killed
    /// xcaps left).
    #[error("tc (clsact): {0}")]
    Clsact(String),
    #[error("capture buffer: {0}")]
    Buffer(String),
}

/// Where the programs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HookKind {
    Xdp,
    #[default]
    Tc,
}

/// tcpdump's `-Q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DirectionFilter {
    In,
    Out,
    #[default]
    InOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

/// The hook a packet was seen at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookPoint {
    Xdp,
    Tc,
}

/// How TC programs get attached, as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TcAttachChoice {
    /// TCX links where the kernel has TCX (6.6+), clsact filters elsewhere.
    #[default]
    Auto,
    /// TCX links or an error.
    Tcx,
    /// clsact filters even where TCX exists (a testing aid: it runs the
    /// fallback of older kernels on a new one).
    Clsact,
}

/// How a capture's TC programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcAttach {
    /// TCX links: first on ingress, last on egress.
    Tcx,
    /// Direct-action cls_bpf filters on a clsact qdisc ([`clsact`]): the
    /// kernel has no TCX, or `forced` by [`TcAttachChoice::Clsact`].
    Clsact { forced: bool },
}

impl TcAttach {
    /// What attaches a program at `hook` ("tc ingress", "tc egress"):
    /// "tcx link", or "clsact cls_bpf pref 1" and "... pref 65535".
    pub fn describe(self, hook: &str) -> String {
        let side = if hook.ends_with("egress") {
            clsact::Side::Egress
        } else {
            clsact::Side::Ingress
        };
        match self {
            TcAttach::Tcx => "tcx link".into(),
            TcAttach::Clsact { .. } => format!("clsact cls_bpf pref {}", side.prio()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native, or generic when the driver has no native XDP.
    #[default]
    Auto,
    Native,
    Generic,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub interfaces: Vec<String>,
    pub hook: HookKind,
    pub direction: DirectionFilter,
    /// 1..=262144.
    pub snaplen: u32,
    pub expression: String,
    pub xdp_mode: XdpMode,
    /// Pages per CPU ring (a power of two).
    pub ring_pages: usize,
    /// When the kernel wakes a ring's reader.
    pub wakeup: Wakeup,
    /// How long a reader waits in poll() for more records after it last
    /// found some (bounds the latency of records that did not trigger a
    /// wakeup). A ring buffer's reader that found none in that time sleeps
    /// until the next record wakes it: an idle capture costs no wakeups.
    pub poll_ms: i32,
    /// Batches queued between readers and the consumer.
    pub queue_batches: usize,
    /// TC: `bpf_skb_pull_data` this many bytes into the linear part before
    /// filtering (0: never).
    pub tc_pull: u32,
    /// Count every packet the programs run on ([`Stats::seen`]); costs a
    /// few ns per packet.
    pub count_seen: bool,
    /// Put the interfaces in promiscuous mode while capturing (tcpdump's
    /// default; `-p` turns it off), so that a NIC hands over frames for
    /// other hosts too. Not with `any`, as libpcap.
    pub promiscuous: bool,
    /// TCX links or clsact filters.
    pub tc_attach: TcAttachChoice,
    /// Attribute each packet to its process, and keep only the processes
    /// selected (see [`attribution`]; tracing captures have
    /// [`trace::TraceConfig::who`]). `None`: no attribution.
    pub who: Option<attribution::Who>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interfaces: Vec::new(),
            hook: HookKind::Tc,
            direction: DirectionFilter::InOut,
            snaplen: 262_144,
            expression: String::new(),
            xdp_mode: XdpMode::Auto,
            ring_pages: 512,
            wakeup: Wakeup::Events(1),
            poll_ms: 50,
            queue_batches: 1024,
            tc_pull: 0,
            count_seen: true,
            promiscuous: false,
            tc_attach: TcAttachChoice::Auto,
            who: None,
        }
    }
}

/// One captured packet.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Wall-clock time, ns since the epoch.
    pub ts_ns: u64,
    pub ifindex: u32,
    /// Index into [`Capture::interfaces`].
    pub iface: usize,
    pub hook: HookPoint,
    pub direction: Direction,
    /// Length on the wire (with an out-of-band VLAN tag put back: + 4).
    pub wirelen: u32,
    pub cpu: u32,
    /// XDP: RX queue; TC: `skb->queue_mapping`.
    pub queue: u32,
    /// TC: `skb->pkt_type`.
    pub pkt_type: u8,
    /// TC: the out-of-band VLAN tag (TPID, TCI), already put back into
    /// `data` after the MAC addresses, as libpcap does.
    pub vlan: Option<(u16, u16)>,
    /// The captured bytes.
    pub data: Bytes,
    /// Who sent or receives it ([`Config::who`]).
    pub owner: attribution::Owner,
}

/// What one reader hands over at a time.
pub struct Batch {
    pub packets: Vec<Packet>,
}

/// An interface and what xcap attached to it.
#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    /// A loopback device: each packet crosses its TC egress and then its
    /// ingress, so with both directions only ingress is hooked (tcpdump,
    /// too, skips the loopback's outgoing copies).
    pub loopback: bool,
    /// "xdp native", "xdp generic", "tc ingress", "tc egress".
    pub attached: Vec<String>,
}

/// When the kernel wakes a reader blocked in poll() (perf buffers and BPF
/// ring buffers alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    /// After this many records (1: every record; a ring buffer then wakes
    /// its reader whenever the reader has caught up).
    Events(u32),
    /// When this many bytes are waiting.
    Bytes(u32),
}

/// Counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets the programs ran on (0 unless [`Config::count_seen`]).
    pub seen: u64,
    /// Packets the filter matched ("received by filter").
    pub matched: u64,
    /// Matched packets whose record could not be written: the ring was
    /// full, or another error. Every matched packet is either read from a
    /// ring or counted here.
    pub output_errors: u64,
    /// Sum of PERF_RECORD_LOST counts read from perf rings (tracing
    /// captures; live captures use BPF ring buffers, which have none).
    pub perf_lost: u64,
}

/// What a capture shares with its reader threads (live and tracing alike).
struct Shared {
    draining: AtomicBool,
    perf_lost: AtomicU64,
    /// An eventfd, readable once `draining` is set: readers poll it with
    /// their ring, so none waits out a timeout (or sleeps on) after detach.
    stop: OwnedFd,
    /// Puts an empty batch in the consumer's queue ([`Waker`]); `None`
    /// after detach, so that the queue disconnects once the readers are done.
    wake_consumer: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl Shared {
    fn new() -> Result<Arc<Shared>, Error> {
        // SAFETY: eventfd has no memory preconditions; the fd is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::Buffer(format!(
                "eventfd: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Arc::new(Shared {
            draining: AtomicBool::new(false),
            perf_lost: AtomicU64::new(0),
            // SAFETY: a fresh fd, ours alone.
            stop: unsafe { OwnedFd::from_raw_fd(fd) },
            wake_consumer: Mutex::new(None),
        }))
    }

    fn stop_fd(&self) -> RawFd {
        self.stop.as_raw_fd()
    }

    fn wake_consumer(&self) -> MutexGuard<'_, Option<Box<dyn Fn() + Send>>> {
        self.wake_consumer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The programs' counters summed over CPUs, with the perf losses read
    /// so far. Live and tracing objects share the counters map's layout.
    fn stats(&self, counters: Option<BorrowedFd<'_>>) -> Stats {
        let mut s = Stats {
            perf_lost: self.perf_lost.load(Ordering::Relaxed),
            ..Stats::default()
        };
        let cpus = cpus::possible().unwrap_or(1);
        if let Some(map) = counters {
            let sum = |i: u32| object::percpu_sum(map, i, cpus).unwrap_or(0);
            s.seen = sum(capture_abi::COUNTER_SEEN);
            s.matched = sum(capture_abi::COUNTER_MATCHED);
            s.output_errors = sum(capture_abi::COUNTER_OUTPUT_ERRORS);
        }
        s
    }
}

/// Closes every link (detaching the programs), then tells the readers to
/// drain their rings and stop; a second call does nothing.
fn detach_links<L>(detached: &mut bool, links: &mut Vec<L>, shared: &Shared) {
    if *detached {
        return;
    }
    *detached = true;
    links.clear();
    // A program that was running when its link went away may still be
    // writing its sample: give it time before the final drain.
    std::thread::sleep(Duration::from_millis(20));
    shared.draining.store(true, Ordering::Release);
    // SAFETY: an 8-byte write to our eventfd.
    unsafe { libc::write(shared.stop_fd(), 1u64.to_ne_bytes().as_ptr().cast(), 8) };
    *shared.wake_consumer() = None;
}

/// Wakes a consumer waiting in `recv_timeout` (with an empty batch), from
/// any thread: e.g. the one that takes a signal, so that the consumer can
/// wait without a short timeout and still stop at once. Does nothing once
/// the capture is detached.
#[derive(Clone)]
pub struct Waker(Arc<Shared>);

impl Waker {
    pub fn wake(&self) {
        if let Some(wake) = self.0.wake_consumer().as_ref() {
            wake();
        }
    }
}

/// The filter, compiled as libpcap does on a live handle of the first
/// interface; with `-i any`, of the first that is up (libpcap cannot open
/// one that is down), or on a dead Ethernet handle when none is.
fn compile_filter(
    cfg: &Config,
    interfaces: &[Interface],
    any: bool,
) -> Result<live_filter::Compiled, Error> {
    let on = match any {
        true => interfaces.iter().find(|i| iface::is_up(&i.name)),
        false => interfaces.first(),
    };
    match on {
        Some(i) => live_filter::compile_on_interface(&cfg.expression, &i.name, cfg.snaplen),
        None => live_filter::compile_dead(&cfg.expression, cfg.snaplen),
    }
}

/// Waits for the readers to finish, after [`detach_links`].
fn join_readers<T>(rx: &mut Option<Receiver<T>>, readers: &mut Vec<JoinHandle<()>>) {
    // Readers blocked on a full channel get an error once it is gone.
    *rx = None;
    for r in readers.drain(..) {
        let _ = r.join();
    }
}

/// The next batch from the readers; `Disconnected` once the receiver is gone.
fn recv_batch<T>(rx: Option<&Receiver<T>>, timeout: Duration) -> Result<T, RecvTimeoutError> {
    match rx {
        Some(rx) => rx.recv_timeout(timeout),
        None => Err(RecvTimeoutError::Disconnected),
    }
}

/// A running capture; see the crate documentation.
pub struct Capture {
    object: object::Loaded,
    /// Closing a link detaches its program.
    links: Vec<OwnedFd>,
    /// TC without TCX: xcap's clsact filters, removed when it is dropped.
    clsact: Option<clsact::Session>,
    /// How TC programs were attached (`None` at XDP).
    pub tc_attach: Option<TcAttach>,
    readers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    rx: Option<Receiver<Batch>>,
    interfaces: Vec<Interface>,
    /// Started with `-i any`, and the interfaces that left out (name,
    /// `ARPHRD_*` type).
    any: bool,
    skipped: Vec<(String, u16)>,
    /// Packet sockets holding the interfaces in promiscuous mode.
    promiscuous: Vec<OwnedFd>,
    /// `-i any`: what attaches to interfaces that appear.
    follow: Option<follow::Follower>,
    detached: bool,
    /// Length of the cBPF program and of each translation, for `-v`.
    pub cbpf_insns: usize,
    pub ebpf_insns: Vec<(&'static str, usize)>,
    /// Per hook, how its program runs the filter (inlined, or called and
    /// why), for `-v`.
    pub linkage: Vec<(&'static str, object::Linkage)>,
    /// Whether the filter was compiled on a live handle.
    pub compiled_live: bool,
    /// The owner programs and process filters, with [`Config::who`].
    pub attribution: Option<attribution::Attribution>,
}

/// The interface name that means every interface (see [`iface`]).
pub const ANY: &str = "any";

impl Capture {
    pub fn start(cfg: &Config) -> Result<Capture, Error> {
        Self::start_on_this_kernel(cfg).map_err(kernel::explain)
    }

    /// The steps of a start, in order; on an error, what was made so far
    /// is dropped (links closed, readers stopped).
    fn start_on_this_kernel(cfg: &Config) -> Result<Capture, Error> {
        check_privileges()?;
        let Resolved {
            interfaces,
            any,
            skipped,
        } = resolve_interfaces(cfg)?;
        check_settings(cfg)?;
        let ring_bytes = ring_bytes(cfg.ring_pages)?;
        let rings = create_rings_meanwhile(ring_bytes)?;
        let hooks = hooks_for(cfg);
        let mut attaching = attach_placeholders_meanwhile(cfg, &interfaces, &hooks);
        let compiled = compile_filter(cfg, &interfaces, any)?;
        let filters = translate_filters(&compiled, &hooks)?;
        let spliced = splice_filters(&filters)?;
        let rings = rings
            .join()
            .map_err(|_| Error::Buffer("the ring buffer thread panicked".into()))?
            .map_err(Error::Buffer)?;
        let object = load_programs(
            cfg,
            &compiled,
            &hooks,
            &filters,
            &spliced,
            (rings.array, rings.asleep),
            ring_bytes,
        )?;
        let reader = start_reader(cfg, &interfaces, &hooks, any, rings.rings)?;
        let mut cap = Capture {
            linkage: linkage(&object, &hooks),
            object,
            links: Vec::new(),
            clsact: None,
            tc_attach: None,
            readers: reader.threads,
            shared: reader.shared,
            rx: Some(reader.rx),
            interfaces,
            any,
            skipped,
            promiscuous: Vec::new(),
            follow: reader.follow,
            detached: false,
            cbpf_insns: compiled.cbpf.len(),
            ebpf_insns: hooks
                .iter()
                .zip(&filters)
                .map(|((h, _, _), (_, f))| (h.name(), f.len()))
                .collect(),
            compiled_live: compiled.live,
            attribution: None,
        };
        // Owners recorded before any packet is.
        if let Some(who) = &cfg.who {
            cap.attribution = Some(attribution::Attribution::start(&cap.object, who)?);
        }
        cap.enter_promiscuous_mode(cfg)?;
        cap.attach(&hooks, attaching.wait(), cfg)?;
        Ok(cap)
    }

    /// Puts each interface in promiscuous mode when asked (tcpdump's
    /// default; `-p` turns it off), for as long as the capture runs.
    fn enter_promiscuous_mode(&mut self, cfg: &Config) -> Result<(), Error> {
        if cfg.promiscuous && !self.any {
            for i in &self.interfaces {
                let sock = iface::promiscuous(i.ifindex).map_err(|e| Error::Attach {
                    iface: i.name.clone(),
                    hook: "promiscuous mode".into(),
                    message: e.to_string(),
                })?;
                self.promiscuous.push(sock);
            }
        }
        Ok(())
    }

    /// Attaches the capture programs, or switches the links made early to
    /// them; where TC goes through clsact, adds the filters instead.
    fn attach(
        &mut self,
        hooks: &[(Hook, &'static str, &'static str)],
        early: Option<Result<(TcAttach, Links), Error>>,
        cfg: &Config,
    ) -> Result<(), Error> {
        let pairs = link_order(&self.interfaces, hooks);
        let object = &self.object;
        let program = |name: &str| {
            object
                .program(name)
                .ok_or_else(|| Error::Load(format!("no program {name}")))
        };
        let (tc, links) = match early {
            Some(made) => {
                let (tc, links) = made?;
                (Some(tc), links)
            }
            None if cfg.hook == HookKind::Tc => {
                let probe = program(hooks[0].2)?;
                (Some(tc_attach_mode(cfg.tc_attach, probe)?), Vec::new())
            }
            None => (None, Vec::new()),
        };
        self.tc_attach = tc;
        if let Some(TcAttach::Clsact { .. }) = tc {
            return self.attach_clsact(hooks, &pairs);
        }
        if !links.is_empty() {
            for (&(n, h), (link, what)) in pairs.iter().zip(links) {
                let iface = &mut self.interfaces[n];
                iface.attached.push(what.to_owned());
                link::update(link.as_fd(), program(hooks[h].2)?).map_err(|e| Error::Attach {
                    iface: iface.name.clone(),
                    hook: what.into(),
                    message: e.to_string(),
                })?;
                self.links.push(link);
            }
            return Ok(());
        }
        for (n, h) in pairs {
            let prog = program(hooks[h].2)?;
            let (link, what) = attach(&self.interfaces[n], hooks[h].0, prog, cfg.xdp_mode)?;
            self.links.push(link);
            self.interfaces[n].attached.push(what.to_owned());
        }
        Ok(())
    }

    /// TC through clsact: removes what killed xcaps left, then adds a
    /// filter per (interface, hook). The session is kept from the start,
    /// so an error removes the filters already added.
    fn attach_clsact(
        &mut self,
        hooks: &[(Hook, &'static str, &'static str)],
        pairs: &[(usize, usize)],
    ) -> Result<(), Error> {
        let session = self
            .clsact
            .insert(clsact::Session::new().map_err(Error::Clsact)?);
        for &(n, h) in pairs {
            let (hook, _, name) = hooks[h];
            let prog = self
                .object
                .program(name)
                .ok_or_else(|| Error::Load(format!("no program {name}")))?;
            let side = if hook == Hook::TcEgress {
                clsact::Side::Egress
            } else {
                clsact::Side::Ingress
            };
            let iface = &mut self.interfaces[n];
            session
                .attach(iface.ifindex, side, prog, name)
                .map_err(|message| Error::Attach {
                    iface: iface.name.clone(),
                    hook: hook.name().into(),
                    message,
                })?;
            iface.attached.push(hook.name().to_owned());
        }
        Ok(())
    }

    /// With clsact attachment: the filters of killed xcaps that this start
    /// removed ("IFACE SIDE NAME").
    pub fn stale_tc_filters_removed(&self) -> &[String] {
        self.clsact.as_ref().map_or(&[], |s| &s.swept[..])
    }

    /// The interfaces, with what is attached to each.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Whether the capture was started on `any` (whose interfaces may come
    /// and go: one that disappears is no reason to stop).
    pub fn captures_any(&self) -> bool {
        self.any
    }

    /// With `-i any`, the interfaces left out (name, `ARPHRD_*` type): their
    /// packets have no Ethernet header.
    pub fn skipped_interfaces(&self) -> &[(String, u16)] {
        &self.skipped
    }

    /// The next batch of packets. `Err(Disconnected)` once every reader has
    /// finished, after [`Capture::detach`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Batch, RecvTimeoutError> {
        recv_batch(self.rx.as_ref(), timeout)
    }

    /// A handle that wakes [`Capture::recv_timeout`] from another thread.
    pub fn waker(&self) -> Waker {
        Waker(self.shared.clone())
    }

    /// The first interface that no longer exists (its links are gone).
    pub fn vanished_interface(&self) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|i| !ifindex_exists(i.ifindex))
            .map(|i| i.name.as_str())
    }

    /// Detaches every program, then lets the readers drain their rings and
    /// stop. Packets keep arriving through [`Capture::recv_timeout`] until
    /// it reports `Disconnected`.
    pub fn detach(&mut self) {
        // No more interfaces, and the links of those that came closed.
        self.follow = None;
        // Filters first: the links' detach waits for programs in flight,
        // which covers both.
        self.clsact = None;
        detach_links(&mut self.detached, &mut self.links, &self.shared);
    }

    /// The kernel's counters and the perf losses read so far. Exact after
    /// `recv_timeout` reported `Disconnected`.
    pub fn stats(&self) -> Stats {
        self.shared
            .stats(self.object.map(capture_abi::COUNTERS_MAP))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.detach();
        join_readers(&mut self.rx, &mut self.readers);
    }
}

/// Links being made on another thread (none where TC goes through
/// clsact). Dropping it waits for them, so a start that fails has closed
/// every link by the time it returns.
struct PendingLinks(Option<JoinHandle<Result<(TcAttach, Links), Error>>>);

/// Link fds, each with where it is attached ("tc ingress", ...).
type Links = Vec<(OwnedFd, &'static str)>;

impl PendingLinks {
    fn wait(&mut self) -> Option<Result<(TcAttach, Links), Error>> {
        let handle = self.0.take()?;
        Some(
            handle
                .join()
                .unwrap_or_else(|_| Err(Error::Load("the attaching thread panicked".into()))),
        )
    }
}

impl Drop for PendingLinks {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// A hook to capture at: the translator's hook, the stub and the program.
type HookPlan = (Hook, &'static str, &'static str);

/// The interfaces a capture is for.
struct Resolved {
    interfaces: Vec<Interface>,
    /// `-i any` was asked for.
    any: bool,
    /// The interfaces `any` skipped, with their link type.
    skipped: Vec<(String, u16)>,
}

/// The interfaces named (`any`: every interface with an Ethernet header,
/// see [`iface`], at TC only), each once; whether `any` was asked for, and
/// the interfaces it skipped.
fn resolve_interfaces(cfg: &Config) -> Result<Resolved, Error> {
    if cfg.interfaces.is_empty() {
        return Err(Error::Config("no interface given".into()));
    }
    // `any`, unless an interface has that name.
    let any = cfg.interfaces.iter().any(|n| n == ANY) && ifindex(ANY).is_none();
    let mut skipped = Vec::new();
    let names = if any {
        if cfg.hook == HookKind::Xdp {
            return Err(Error::Config(
                "-i any is for --tc: XDP attaches to the interfaces named with -i".into(),
            ));
        }
        let found = iface::any().map_err(|e| Error::Config(format!("-i any: {e}")))?;
        let mut names: Vec<String> = cfg
            .interfaces
            .iter()
            .filter(|n| *n != ANY)
            .cloned()
            .collect();
        names.extend(found.ethernet);
        skipped = found.skipped;
        if names.is_empty() {
            return Err(Error::Config(
                "-i any: no interface with an Ethernet header here".into(),
            ));
        }
        names
    } else {
        cfg.interfaces.clone()
    };
    let mut interfaces = Vec::new();
    for name in &names {
        let ifindex = ifindex(name).ok_or_else(|| Error::NoSuchDevice(name.clone()))?;
        if interfaces.iter().any(|i: &Interface| i.ifindex == ifindex) {
            continue;
        }
        interfaces.push(Interface {
            name: name.clone(),
            ifindex,
            loopback: iface::is_loopback(name),
            attached: Vec::new(),
        });
    }
    Ok(Resolved {
        interfaces,
        any,
        skipped,
    })
}

/// The settings no kernel would take.
fn check_settings(cfg: &Config) -> Result<(), Error> {
    if cfg.hook == HookKind::Xdp && cfg.direction != DirectionFilter::In {
        return Err(Error::Config(
            "XDP sees received packets only: use -Q in with --xdp, or --tc for -Q out/inout".into(),
        ));
    }
    if cfg.who.is_some() && cfg.hook == HookKind::Xdp {
        return Err(Error::Config(
            "attribution and process filters work at TC and the tracing hooks (XDP runs before there is a socket): use --tc".into(),
        ));
    }
    if !(1..=262_144).contains(&cfg.snaplen) {
        return Err(Error::Config(format!("invalid snaplen {}", cfg.snaplen)));
    }
    Ok(())
}

/// Starts creating the ring buffers on another thread: putting them in the
/// programs' array waits for an RCU grace period, which passes while
/// libpcap compiles.
fn create_rings_meanwhile(
    ring_bytes: u32,
) -> Result<JoinHandle<Result<ring::Rings, String>>, Error> {
    let possible = cpus::possible()? as u32;
    let cpus = cpus::online()?;
    std::thread::Builder::new()
        .name("xcap-rings".into())
        .spawn(move || {
            ring::Rings::create(
                capture_abi::RINGS_MAP,
                capture_abi::ASLEEP_MAP,
                possible,
                &cpus,
                ring_bytes,
            )
        })
        .map_err(|e| Error::Buffer(e.to_string()))
}

/// The hooks to capture at: XDP, or TC ingress and/or egress as `-Q` asks.
fn hooks_for(cfg: &Config) -> Vec<HookPlan> {
    let mut hooks = Vec::new();
    match cfg.hook {
        HookKind::Xdp => hooks.push((Hook::Xdp, live_abi::STUB_XDP, live_abi::PROG_XDP)),
        HookKind::Tc => {
            if cfg.direction != DirectionFilter::Out {
                hooks.push((Hook::TcIngress, live_abi::STUB_TC, live_abi::PROG_TC));
            }
            if cfg.direction != DirectionFilter::In {
                hooks.push((
                    Hook::TcEgress,
                    live_abi::STUB_TC_EGRESS,
                    live_abi::PROG_TC_EGRESS,
                ));
            }
        }
    }
    hooks
}

/// Opening a live handle, making a TCX link and switching an XDP program
/// each wait for an RCU grace period in the kernel (about 10 ms each
/// here). TC links are therefore made on another thread while libpcap
/// compiles and the programs load, with a program that does nothing, and
/// switched to the capture programs at the end, which for TCX costs no
/// grace period. Only for an expression that compiles on a dead handle, so
/// a typo never touches an interface. XDP attaches at the end: switching
/// its program waits as long as attaching it.
fn attach_placeholders_meanwhile(
    cfg: &Config,
    interfaces: &[Interface],
    hooks: &[HookPlan],
) -> PendingLinks {
    let early = cfg.hook == HookKind::Tc
        && cbpf2ebpf::libpcap::compile(&cfg.expression, 1, cfg.snaplen).is_ok();
    PendingLinks(early.then(|| {
        let (interfaces, hooks) = (interfaces.to_vec(), hooks.to_vec());
        let choice = cfg.tc_attach;
        std::thread::spawn(move || attach_placeholders(&interfaces, &hooks, choice))
    }))
}

/// The filter translated for each hook: (stub, eBPF).
fn translate_filters(
    compiled: &live_filter::Compiled,
    hooks: &[HookPlan],
) -> Result<Vec<(&'static str, Vec<cbpf2ebpf::ebpf::Insn>)>, Error> {
    hooks
        .iter()
        .map(|(hook, stub, _)| Ok((*stub, live_filter::translate_for(compiled, *hook)?)))
        .collect()
}

/// The capture programs with each filter in its stub's place.
fn splice_filters(
    filters: &[(&'static str, Vec<cbpf2ebpf::ebpf::Insn>)],
) -> Result<injector::Spliced, Error> {
    let stubs: Vec<(&str, &[cbpf2ebpf::ebpf::Insn])> =
        filters.iter().map(|(s, f)| (*s, &f[..])).collect();
    programs::splice(&stubs)
}

/// Creates the object's maps (the rings' array and sleep flags made
/// already, the settings in `.rodata`) and loads the programs of `hooks`,
/// the filters inlined: their call and return would cost more than most
/// filters do.
fn load_programs(
    cfg: &Config,
    compiled: &live_filter::Compiled,
    hooks: &[HookPlan],
    filters: &[(&'static str, Vec<cbpf2ebpf::ebpf::Insn>)],
    spliced: &injector::Spliced,
    rings: (OwnedFd, OwnedFd),
    ring_bytes: u32,
) -> Result<object::Loaded, Error> {
    let (rings_array, asleep) = rings;
    let (wakeup_events, wakeup_bytes) = match cfg.wakeup {
        Wakeup::Events(n) if n > 1 => (n, 0),
        Wakeup::Events(_) => (0, 0),
        Wakeup::Bytes(n) => (0, n.clamp(1, ring_bytes)),
    };
    let [attributing, select] = attribution::globals(cfg.who.as_ref());

    let bodies: Vec<&[cbpf2ebpf::ebpf::Insn]> = filters.iter().map(|(_, f)| &f[..]).collect();
    let maps = object::Maps::create(
        &spliced.elf,
        &[
            (capture_abi::GLOBAL_SNAPLEN, &cfg.snaplen.to_ne_bytes()),
            (capture_abi::GLOBAL_TC_PULL, &cfg.tc_pull.to_ne_bytes()),
            (
                capture_abi::GLOBAL_FILTER_READS_LEN,
                &u32::from(live_filter::reads_len(&compiled.cbpf)).to_ne_bytes(),
            ),
            (
                capture_abi::GLOBAL_COUNT_SEEN,
                &u32::from(cfg.count_seen).to_ne_bytes(),
            ),
            (
                capture_abi::GLOBAL_WAKEUP_EVENTS,
                &wakeup_events.to_ne_bytes(),
            ),
            (
                capture_abi::GLOBAL_WAKEUP_BYTES,
                &wakeup_bytes.to_ne_bytes(),
            ),
            (attributing.0, &attributing.1),
            (select.0, &select.1),
        ],
        ring_bytes,
        HashMap::from([
            (capture_abi::RINGS_MAP.to_string(), rings_array),
            (capture_abi::ASLEEP_MAP.to_string(), asleep),
            (owner::OWNERS_MAP.to_string(), attribution::owners_map()?),
        ]),
        &[],
    )?;
    let mut programs: Vec<&str> = hooks.iter().map(|(_, _, p)| *p).collect();
    // Attribution's programs record sockets' owners.
    if cfg.who.is_some() {
        programs.extend(owner::PROGRAMS);
    }
    maps.load_programs(&programs, &bodies)
}

/// How each hook's program runs its filter, for `-v`.
fn linkage(object: &object::Loaded, hooks: &[HookPlan]) -> Vec<(&'static str, object::Linkage)> {
    hooks
        .iter()
        .map(|(h, _, p)| {
            let l = object.linkage(p).cloned();
            (
                h.name(),
                l.unwrap_or(object::Linkage::Called("not loaded".into())),
            )
        })
        .collect()
}

/// The reader thread of every ring, the channel it hands batches to and,
/// with `-i any`, what follows interfaces coming and going.
struct Reader {
    shared: Arc<Shared>,
    rx: Receiver<Batch>,
    threads: Vec<JoinHandle<()>>,
    follow: Option<follow::Follower>,
}

/// Starts the reader of every ring, before anything captures.
fn start_reader(
    cfg: &Config,
    interfaces: &[Interface],
    hooks: &[HookPlan],
    any: bool,
    rings: Vec<(u32, ring::BpfRing)>,
) -> Result<Reader, Error> {
    let shared = Shared::new()?;
    let (tx, rx) = mpsc::sync_channel::<Batch>(cfg.queue_batches.max(1));
    let waker_tx = tx.clone();
    *shared.wake_consumer() = Some(Box::new(move || {
        let _ = waker_tx.try_send(Batch {
            packets: Vec::new(),
        });
    }));
    let tai_offset = tai_to_realtime_ns();
    let index: follow::Index = Arc::new(std::sync::RwLock::new(
        interfaces
            .iter()
            .enumerate()
            .map(|(n, i)| (i.ifindex, n))
            .collect(),
    ));
    let follow = match any {
        true => Some(follow::Follower::new(
            hooks.iter().map(|(h, _, p)| (*h, *p)).collect(),
            index.clone(),
        )?),
        false => None,
    };
    let rings: Vec<ring::BpfRing> = rings.into_iter().map(|(_, r)| r).collect();
    let (reader_shared, poll_ms) = (shared.clone(), cfg.poll_ms);
    let readers = vec![std::thread::Builder::new()
        .name("xcap-rings".into())
        .spawn(move || reader(rings, tx, reader_shared, index, tai_offset, poll_ms))
        .map_err(|e| Error::Buffer(e.to_string()))?];
    Ok(Reader {
        shared,
        rx,
        threads: readers,
        follow,
    })
}

/// (interface, hook) index pairs, in the order links are made: every
/// hook on every interface, but a loopback's egress when its ingress is
/// hooked too (it would see every packet twice).
fn link_order(
    interfaces: &[Interface],
    hooks: &[(Hook, &'static str, &'static str)],
) -> Vec<(usize, usize)> {
    let ingress = hooks.iter().any(|h| h.0 == Hook::TcIngress);
    (0..interfaces.len())
        .flat_map(|n| (0..hooks.len()).map(move |h| (n, h)))
        .filter(|&(n, h)| !(interfaces[n].loopback && ingress && hooks[h].0 == Hook::TcEgress))
        .collect()
}

/// How TC programs get attached: as asked, or TCX where the kernel has it
/// (asked with `probe`, a TC program).
fn tc_attach_mode(choice: TcAttachChoice, probe: BorrowedFd<'_>) -> Result<TcAttach, Error> {
    match choice {
        TcAttachChoice::Tcx => Ok(TcAttach::Tcx),
        TcAttachChoice::Clsact => Ok(TcAttach::Clsact { forced: true }),
        TcAttachChoice::Auto => match link::have_tcx(probe) {
            Ok(true) => Ok(TcAttach::Tcx),
            Ok(false) => Ok(TcAttach::Clsact { forced: false }),
            Err(e) => Err(Error::Load(format!(
                "cannot tell whether the kernel has TCX: {e}"
            ))),
        },
    }
}

/// TCX links for every (interface, TC hook) in [`link_order`], with a
/// program that does nothing; none where TC goes through clsact. An error
/// closes the links made so far.
fn attach_placeholders(
    interfaces: &[Interface],
    hooks: &[(Hook, &'static str, &'static str)],
    choice: TcAttachChoice,
) -> Result<(TcAttach, Links), Error> {
    let placeholder = object::placeholder(false)?;
    let tc = tc_attach_mode(choice, placeholder.as_fd())?;
    if tc != TcAttach::Tcx {
        return Ok((tc, Vec::new()));
    }
    // All at once: each link waits for a grace period, and waits that
    // start together end together (one after another, each would also
    // wait out the one in progress when it asked).
    std::thread::scope(|scope| {
        let pending: Vec<_> = link_order(interfaces, hooks)
            .into_iter()
            .map(|(n, h)| {
                let placeholder = placeholder.as_fd();
                scope.spawn(move || attach(&interfaces[n], hooks[h].0, placeholder, XdpMode::Auto))
            })
            .collect();
        pending
            .into_iter()
            .map(|p| {
                p.join()
                    .unwrap_or_else(|_| Err(Error::Load("the attaching thread panicked".into())))
            })
            .collect::<Result<Links, Error>>()
            .map(|links| (tc, links))
    })
}

/// Attaches `prog` to `iface` at `hook`: XDP native, or generic when the
/// driver has none (`XdpMode::Auto`), never replacing an XDP program; TC
/// first on ingress and last on egress, so xcap sees what tcpdump sees.
fn attach(
    iface: &Interface,
    hook: Hook,
    prog: BorrowedFd<'_>,
    mode: XdpMode,
) -> Result<(OwnedFd, &'static str), Error> {
    let (fd, ifindex) = (prog, iface.ifindex);
    let attach_err = |what: &str, e: std::io::Error| Error::Attach {
        iface: iface.name.clone(),
        hook: what.into(),
        message: e.to_string(),
    };
    // TCX asked for where there is none (TcAttachChoice::Tcx).
    let tcx_err = |what: &str, e: std::io::Error| {
        let mut err = attach_err(what, e);
        if let Error::Attach { message, .. } = &mut err {
            if link::have_tcx(fd).ok() == Some(false) {
                message.push_str(" (no TCX in this kernel: it came with Linux 6.6)");
            }
        }
        err
    };
    let (link, what) = match hook {
        Hook::Xdp => {
            let try_mode = |flags: u32| link::create(fd, ifindex, link::BPF_XDP, flags);
            let busy = |e: &std::io::Error| {
                matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST))
            };
            match mode {
                XdpMode::Native | XdpMode::Auto => match try_mode(link::XDP_FLAGS_DRV_MODE) {
                    Ok(l) => (l, "xdp native"),
                    Err(e) if busy(&e) => return Err(Error::XdpBusy(iface.name.clone())),
                    Err(e)
                        if mode == XdpMode::Auto
                            && matches!(
                                e.raw_os_error(),
                                Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                            ) =>
                    {
                        match try_mode(link::XDP_FLAGS_SKB_MODE) {
                            Ok(l) => (l, "xdp generic"),
                            Err(e) if busy(&e) => return Err(Error::XdpBusy(iface.name.clone())),
                            Err(e) => return Err(attach_err("xdp generic", e)),
                        }
                    }
                    Err(e) => return Err(attach_err("xdp native", e)),
                },
                XdpMode::Generic => match try_mode(link::XDP_FLAGS_SKB_MODE) {
                    Ok(l) => (l, "xdp generic"),
                    Err(e) if busy(&e) => return Err(Error::XdpBusy(iface.name.clone())),
                    Err(e) => return Err(attach_err("xdp generic", e)),
                },
            }
        }
        Hook::TcIngress => (
            link::create(fd, ifindex, link::BPF_TCX_INGRESS, link::BPF_F_BEFORE)
                .map_err(|e| tcx_err("tc ingress", e))?,
            "tc ingress",
        ),
        _ => (
            link::create(fd, ifindex, link::BPF_TCX_EGRESS, link::BPF_F_AFTER)
                .map_err(|e| tcx_err("tc egress", e))?,
            "tc egress",
        ),
    };
    Ok((link, what))
}

/// The bytes of a ring of `pages` pages: a power of two the kernel takes.
fn ring_bytes(pages: usize) -> Result<u32, Error> {
    let bytes = pages.saturating_mul(perf::page_size());
    if !pages.is_power_of_two() || bytes > 1 << 30 {
        return Err(Error::Buffer(format!(
            "{pages} pages a CPU: the ring size must be a power of two pages, at most 1 GiB"
        )));
    }
    Ok(bytes as u32)
}

/// The one reader of every ring. Each round notes where every ring's
/// producers are, then drains each ring up to there and hands the round's
/// packets over sorted by time: a ring holds its CPU's packets in time
/// order, and a record reserved after the note has a later time stamp than
/// any before it, so rounds follow each other in order too (per-ring
/// readers handed over packets of different CPUs in whatever order they
/// woke). Copying records out is cheap next to writing them; the writer
/// stays a thread of its own.
fn reader(
    mut rings: Vec<ring::BpfRing>,
    tx: SyncSender<Batch>,
    shared: Arc<Shared>,
    index: follow::Index,
    tai_offset: i64,
    poll_ms: i32,
) {
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let fds: Vec<RawFd> = rings.iter().map(ring::BpfRing::fd).collect();
    // Nothing came during the last wait: sleep until a record wakes us.
    let mut idle = false;
    loop {
        let last = shared.draining.load(Ordering::Acquire);
        if !last {
            if idle {
                ring::BpfRing::sleep_all(&rings, shared.stop_fd());
            } else {
                perf::wait_any_readable(&fds, shared.stop_fd(), poll_ms);
            }
        }
        let ends: Vec<u64> = rings.iter().map(ring::BpfRing::producer_now).collect();
        let mut metas: Vec<(Packet, usize, usize)> = Vec::new();
        // Interfaces that appeared (`-i any`) join the map between drains.
        let index = index.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (ring, end) in rings.iter_mut().zip(ends) {
            let mut drain = |ring: &mut ring::BpfRing| {
                ring.drain_to(end, |r| {
                    if let perf::Record::Sample(raw) = r {
                        if let Some(m) = parse_sample(raw, &index, tai_offset, &mut buf) {
                            metas.push(m);
                        }
                    }
                })
            };
            // A record still being written (its program between reserve
            // and submit, microseconds) is waited for, or the round's
            // later records of other rings would go out before it.
            let mut tries = 0;
            while !drain(ring) && tries < 1000 {
                tries += 1;
                std::hint::spin_loop();
            }
        }
        idle = metas.is_empty();
        if !metas.is_empty() {
            // Stable: a ring's own records keep their order.
            metas.sort_by_key(|(p, _, _)| p.ts_ns);
            let bytes = buf.split().freeze();
            let packets = metas
                .into_iter()
                .map(|(mut p, start, len)| {
                    p.data = bytes.slice(start..start + len);
                    p
                })
                .collect();
            if buf.capacity() < 64 * 1024 {
                buf.reserve(256 * 1024);
            }
            if tx.send(Batch { packets }).is_err() {
                return;
            }
        }
        if last {
            return;
        }
    }
}

/// Parses one sample: header, then packet bytes, appended to `buf` (with an
/// out-of-band VLAN tag put back after the MAC addresses).
fn parse_sample(
    raw: &[u8],
    index: &[(u32, usize)],
    tai_offset: i64,
    buf: &mut BytesMut,
) -> Option<(Packet, usize, usize)> {
    let hdr: Hdr = capture_abi::read(raw)?;
    let mut wirelen = hdr.wirelen;
    let caplen = (hdr.caplen as usize).min(raw.len() - live_abi::HDR_BYTES);
    let hook = if hdr.hook == HOOK_XDP {
        HookPoint::Xdp
    } else {
        HookPoint::Tc
    };
    let direction = if hdr.direction == DIR_OUT {
        Direction::Out
    } else {
        Direction::In
    };
    let vlan_present = hdr.vlan_present != 0;
    let tci = hdr.vlan_tci;
    let tpid = match u16::from_be(hdr.vlan_proto) {
        0 => 0x8100,
        t => t,
    };
    let data = &raw[live_abi::HDR_BYTES..live_abi::HDR_BYTES + caplen];
    let start = buf.len();
    let mut vlan = None;
    if vlan_present && hook == HookPoint::Tc && caplen >= 12 {
        buf.extend_from_slice(&data[..12]);
        buf.extend_from_slice(&tpid.to_be_bytes());
        buf.extend_from_slice(&tci.to_be_bytes());
        buf.extend_from_slice(&data[12..]);
        wirelen += 4;
        vlan = Some((tpid, tci));
    } else {
        buf.extend_from_slice(data);
    }
    let len = buf.len() - start;
    let iface = index
        .iter()
        .find(|(i, _)| *i == hdr.ifindex)
        .map(|(_, n)| *n)
        .unwrap_or(0);
    let p = Packet {
        ts_ns: (hdr.ts_ns as i64 + tai_offset) as u64,
        ifindex: hdr.ifindex,
        iface,
        hook,
        direction,
        wirelen,
        cpu: hdr.cpu,
        queue: hdr.queue,
        pkt_type: hdr.pkt_type,
        vlan,
        data: Bytes::new(),
        owner: attribution::owner_of(&hdr),
    };
    Some((p, start, len))
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// CLOCK_REALTIME - CLOCK_TAI, in ns (the kernel stamps with TAI, which
/// moves with the wall clock except for leap seconds; the offset is taken
/// once, at start).
fn tai_to_realtime_ns() -> i64 {
    let a = clock_ns(libc::CLOCK_TAI);
    let r = clock_ns(libc::CLOCK_REALTIME);
    let b = clock_ns(libc::CLOCK_TAI);
    r - (a + (b - a) / 2)
}

fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn ifindex_exists(ifindex: u32) -> bool {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes.
    !unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) }.is_null()
}

/// CAP_BPF (39), CAP_NET_ADMIN (12) and CAP_PERFMON (38) in the effective
/// set.
fn check_privileges() -> Result<(), Error> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    let Some(eff) = eff else { return Ok(()) };
    let missing: Vec<&str> = [(39, "CAP_BPF"), (12, "CAP_NET_ADMIN"), (38, "CAP_PERFMON")]
        .iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, n)| *n)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Privileges(missing.join(", ")))
    }
}
