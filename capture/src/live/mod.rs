//! Live capture with a tcpdump filter run inside the kernel, at XDP or TC.
//!
//! [`Capture::start`] does, in order:
//! 1. checks privileges and resolves the interfaces;
//! 2. for TC, and an expression that compiles on a dead handle, starts
//!    making the TCX links on another thread, with a program that does
//!    nothing (each link waits for an RCU grace period in the kernel; this
//!    way they wait while the next steps run); that thread first asks
//!    whether the kernel has TCX at all ([`link::have_tcx`](crate::link::have_tcx)), and makes no
//!    link where it has not;
//! 3. compiles the expression with libpcap on a live handle of the first
//!    interface (exactly the program tcpdump would give the kernel; see
//!    [`live_filter`](crate::live_filter));
//! 4. translates it with `cbpf2ebpf` once per hook used (`Hook::Xdp` in
//!    direct mode, `Hook::TcIngress`/`Hook::TcEgress` in skb mode: they
//!    differ in what `inbound`/`outbound` and the VLAN loads read);
//! 5. splices the filters into the capture programs ([`programs`](crate::programs)) and loads its
//!    maps and programs ([`object`]), the snap length in `.rodata`;
//! 6. creates one BPF ring buffer per online CPU ([`ring`](crate::ring)), puts each in
//!    the programs' array of rings at its CPU's index, and starts the reader
//!    thread: in rounds, it notes where every ring's producers are, drains
//!    each up to there and hands the round's [`Packet`]s to the consumer
//!    sorted by time, through a bounded channel (a full channel stalls the
//!    reader, the rings fill, and the kernel counts the drops); when it
//!    found nothing it sleeps until a ring's next record (see [`ring`](crate::ring));
//! 7. attaches with `BPF_LINK_CREATE` ([`link`](crate::link)), or switches the links of
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

mod attach;
mod config;
mod follow;
mod interfaces;
mod load;
mod packet;
mod reader;

use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use self::attach::attach_placeholders_meanwhile;
use self::config::check_settings;
use self::interfaces::{ifindex_exists, resolve_interfaces, Resolved};
use self::load::{
    compile_filter, hooks_for, linkage, load_programs, splice_filters, translate_filters,
};
use self::reader::{create_rings_meanwhile, ring_bytes, start_reader};
use crate::shared::{check_privileges, detach_links, join_readers, recv_batch, Shared, Waker};
use crate::{attribution, clsact, kernel, object, Error, Stats};

pub use config::{Config, DirectionFilter, HookKind, TcAttach, TcAttachChoice, XdpMode};
pub use follow::Followed;
pub use interfaces::Interface;
pub use packet::{Batch, Direction, HookPoint, Packet};

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

/// The interface name that means every interface (see [`iface`](crate::iface)).
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
