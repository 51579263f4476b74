//! # xcap-capture (`capture`)
//!
//! Loads xcap's capture programs with a tcpdump filter spliced in,
//! attaches them, and reads what they record:
//! - [`live`]: at XDP or TC on interfaces ([`Capture`]);
//! - [`trace`]: at tracing hooks, and on XDP programs with `--xdp-hook`
//!   ([`trace::TraceCapture`]);
//! - [`savefile`] and [`trace::TraceWriter`]: pcap and pcapng files of it.
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
pub mod iface;
pub mod kernel;
pub mod link;
pub mod live;
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
mod shared;
mod sys;
pub mod trace;

pub use live::{
    Batch, Capture, Config, Direction, DirectionFilter, Followed, HookKind, HookPoint, Interface,
    Packet, TcAttach, TcAttachChoice, XdpMode, ANY,
};
pub use shared::Waker;

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
