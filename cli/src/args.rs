//! The command line as clap reads it, in tcpdump's conventions: what each
//! flag is called and says in `--help`, nothing more. What the flags mean
//! together is [`crate::plan`]'s business; this module imports nothing of
//! ours.
//!
//! One top-level command ([`RunArgs`]) takes tcpdump-style flags and the
//! expression words; subcommands ([`Command`]) are for jobs tcpdump does
//! not have.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "xcap",
    version,
    about = "tcpdump's filters, translated to eBPF and run in the kernel",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
        xcap -d 'tcp port 80'                  cBPF as tcpdump -d prints it\n  \
        xcap --ebpf --mode skb 'tcp port 80'   the translated eBPF\n  \
        xcap -r in.pcap -w out.pcap icmp        filter a file in the kernel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a filter as an eBPF ELF object: a function to link with
    /// `bpftool gen object`, or a complete XDP or TC program
    Compile(CompileArgs),
}

/// The tcpdump-like top-level command.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print the compiled cBPF and exit: -d as text, -dd as a C array,
    /// -ddd as decimal numbers (as tcpdump)
    #[arg(short = 'd', action = ArgAction::Count)]
    pub dump: u8,

    /// Print the translated eBPF (with instruction and bounds-check counts)
    /// and exit
    #[arg(long, conflicts_with = "dump")]
    pub ebpf: bool,

    /// Packet access mode of the translation: packet pointers (direct),
    /// bpf_skb_load_bytes (skb) or bpf_probe_read_kernel (probe)
    #[arg(long, value_enum, default_value_t = ModeArg::Direct)]
    pub mode: ModeArg,

    /// Hook the eBPF listing is translated for (decides what `inbound`,
    /// `ifindex`, ... read); -r always uses offline
    #[arg(long, value_enum, default_value_t = HookArg::Offline)]
    pub hook: HookArg,

    /// The most calls of the filter's bpf_loop callback, two passes of a
    /// loop each (`protochain`, or a raw program's backward jumps); past
    /// them the filter returns 0. The default, bpf_loop's limit, decides
    /// no `protochain` verdict on packets up to 1 MiB
    #[arg(
        long,
        value_name = "N",
        default_value_t = cbpf2ebpf::DEFAULT_LOOP_ITERATIONS,
        value_parser = clap::value_parser!(u32).range(1..=cbpf2ebpf::ebpf::BPF_MAX_LOOPS as i64)
    )]
    pub max_loop_iterations: u32,

    /// Link type to compile for (EN10MB, RAW, LINUX_SLL, IPV4, IPV6, or a
    /// number) when not reading a file
    #[arg(short = 'y', value_name = "LINKTYPE")]
    pub linktype: Option<String>,

    /// Snap length: the value the filter returns on a match (0 means 262144)
    #[arg(short = 's', value_name = "SNAPLEN", allow_hyphen_values = true)]
    pub snaplen: Option<String>,

    /// Read the filter expression from FILE ('#' starts a comment);
    /// expression words on the command line are then ignored
    #[arg(short = 'F', value_name = "FILE", conflicts_with = "raw_cbpf")]
    pub filter_file: Option<String>,

    /// Read a raw cBPF program, as `tcpdump -ddd` or `-dd` prints it, from
    /// FILE ('-' for stdin) instead of compiling an expression
    #[arg(long, value_name = "FILE")]
    pub raw_cbpf: Option<String>,

    /// Read packets from a pcap or pcapng FILE
    #[arg(short = 'r', value_name = "FILE")]
    pub read: Option<String>,

    /// Write the matching packets to a pcap FILE ('-' for stdout)
    #[arg(short = 'w', value_name = "FILE")]
    pub write: Option<String>,

    /// Stop after COUNT matching packets
    #[arg(short = 'c', value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// What runs the filter on each packet read with -r: the kernel
    /// (BPF_PROG_TEST_RUN; the default when privileged), our user-space eBPF
    /// VM (the default otherwise), or libpcap's own cBPF interpreter
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,

    /// The filter expression; words are joined with spaces, as tcpdump does
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,

    /// After `--`: run CMD (as the user who ran sudo, if any), capture only
    /// the packets of CMD and its children (TC), and stop when it exits,
    /// with its exit status
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,

    /// Live capture flags (-i, --xdp, --tc, -Q, -n, -q, -v, -U, --pcapng, ...)
    #[command(flatten)]
    pub live: LiveArgs,

    /// Tracing hooks (--trace, --fentry, --xdp-hook)
    #[command(flatten)]
    pub trace: TraceArgs,

    /// Who sent each packet (--who, --pid, --comm, --cgroup, --container)
    #[command(flatten)]
    pub who: WhoArgs,

    /// -w files that rotate (-C, -G, -W, -z)
    #[command(flatten)]
    pub rotation: RotationArgs,

    /// Wireshark's extcap calls, and --extcap-install
    #[command(flatten)]
    pub extcap: ExtcapArgs,

    /// How packets are printed (-t, -e, -x, -X, -A)
    #[command(flatten)]
    pub print: PrintArgs,

    /// List the interfaces libpcap can capture on, as tcpdump -D, and exit
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,
}

/// Live-capture flags (tcpdump's, plus the hook choice).
#[derive(Debug, Args, Default)]
pub struct LiveArgs {
    /// Capture on IFACE (repeat for several); default: the first interface
    /// libpcap finds
    #[arg(short = 'i', value_name = "IFACE")]
    pub interfaces: Vec<String>,

    /// Filter at XDP (received packets only; the earliest hook)
    #[arg(long, conflicts_with = "tc")]
    pub xdp: bool,

    /// Filter at TC (clsact/TCX ingress and egress; the default)
    #[arg(long)]
    pub tc: bool,

    /// Direction: in, out or inout (default: inout with --tc, in with --xdp)
    #[arg(short = 'Q', value_enum, value_name = "DIRECTION")]
    pub direction: Option<DirectionArg>,

    /// XDP attach mode; by default native, or generic if the driver has no
    /// native XDP
    #[arg(long, value_enum, value_name = "MODE", requires = "xdp")]
    pub xdp_mode: Option<XdpModeArg>,

    /// Write pcapng instead of pcap (also chosen by a .pcapng file name)
    #[arg(long)]
    pub pcapng: bool,

    /// Don't convert addresses to names (xcap never resolves names)
    #[arg(short = 'n', action = ArgAction::Count)]
    pub numeric: u8,

    /// Quiet output: less protocol detail
    #[arg(short = 'q')]
    pub quiet: bool,

    /// Verbose: the hook, CPU and queue of each packet, filter sizes, and
    /// the loss counters at the end
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,

    /// Packet-buffered output: flush after each packet (with -w), and have
    /// the kernel wake the readers as soon as a packet arrives
    #[arg(short = 'U')]
    pub packet_buffered: bool,

    /// Have the kernel wake the readers as soon as a packet arrives (as
    /// tcpdump's --immediate-mode; -U also flushes the output)
    #[arg(long)]
    pub immediate_mode: bool,

    /// Don't put the interfaces into promiscuous mode (tcpdump's -p)
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promiscuous: bool,

    /// Buffer size per CPU, in pages (a power of two): a BPF ring buffer
    /// at XDP and TC, a perf buffer for --trace
    #[arg(
        long,
        visible_alias = "perf-pages",
        value_name = "PAGES",
        default_value_t = 512
    )]
    pub buffer_pages: usize,

    /// Buffer size per CPU in KiB, as tcpdump's -B (rounded up to a power
    /// of two pages); overrides --buffer-pages
    #[arg(short = 'B', long = "buffer-size", value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub buffer_kib: Option<u32>,

    /// Wake the readers after this many packets (default: 1 with -U;
    /// otherwise each time a quarter of a CPU's buffer has been written,
    /// 50 ms after their last packets (1 s with -w), and on the first
    /// packet after they found none)
    #[arg(long, value_name = "N")]
    pub wakeup: Option<u32>,

    /// Once attached and the -w file is open, run as USER instead of root,
    /// keeping only CAP_NET_ADMIN and CAP_BPF (and CAP_DAC_OVERRIDE for
    /// -C/-G files in a folder USER cannot write); default: the user who
    /// ran sudo, else `xcap` if it exists, else `nobody`; `-Z root` keeps
    /// root (as tcpdump's -Z)
    #[arg(short = 'Z', long = "relinquish-privileges", value_name = "USER")]
    pub user: Option<String>,

    /// TC: make this many bytes linear (bpf_skb_pull_data) before the
    /// filter runs, for filters that read past the linear part of an skb
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub tc_pull: u32,

    /// Capture in another network namespace: an `ip netns` NAME, a PATH to
    /// a namespace file, or a PID (its namespace); interfaces are resolved
    /// there
    #[arg(long, value_name = "NAME|PATH|PID")]
    pub netns: Option<String>,
}

/// Attribution and process filters.
#[derive(Debug, Args, Default)]
pub struct WhoArgs {
    /// Show the process of each packet (pid, thread, command, cgroup,
    /// container, netns) without the rest of -v; at TC and the tracing
    /// hooks (--trace, --fentry, --fexit), from the packet's socket
    #[arg(long)]
    pub who: bool,

    /// Keep only the packets of process PID (repeat for several); at TC
    /// and the tracing hooks, in the kernel, ANDed with the expression
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// With --pid: the processes' children too (found by polling /proc)
    #[arg(long, requires = "pids")]
    pub follow_children: bool,

    /// Keep only the packets of threads named NAME (repeat for several)
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,

    /// Keep only the packets of processes in cgroup PATH or below (a cgroup
    /// v2 path, or its directory; repeat for several)
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,

    /// Keep only the packets of the container whose id starts with ID, as
    /// its cgroup path names it (docker, containerd, cri-o, podman)
    #[arg(long = "container", value_name = "ID")]
    pub containers: Vec<String>,
}

/// tcpdump's rotation of `-w` files.
#[derive(Debug, Args, Default)]
pub struct RotationArgs {
    /// Before writing a packet, start a new -w file if this one is larger
    /// than SIZE millions of bytes; files after the first are named FILE1,
    /// FILE2, ... (as tcpdump)
    #[arg(short = 'C', value_name = "SIZE", allow_hyphen_values = true)]
    pub file_size: Option<String>,

    /// Start a new -w file every SECONDS, at multiples of SECONDS on the
    /// local clock (-G 3600: on the hour; tcpdump counts from its own start
    /// and drifts); FILE may hold strftime(3) patterns (%Y%m%d-%H%M%S),
    /// filled in with the file's start
    #[arg(short = 'G', value_name = "SECONDS", allow_hyphen_values = true)]
    pub rotate_seconds: Option<String>,

    /// With -C: a ring of COUNT files, reused in turn (their numbers
    /// zero-padded to the width of COUNT-1); with -G alone: stop after
    /// COUNT files
    #[arg(short = 'W', value_name = "COUNT", allow_hyphen_values = true)]
    pub file_count: Option<String>,

    /// Run `CMD FILE` on each file a rotation closes (-C, -G), at the lowest
    /// priority, e.g. -z gzip (as tcpdump, not on the file open at the end)
    #[arg(short = 'z', value_name = "CMD")]
    pub post_rotate: Option<String>,
}

/// Wireshark's extcap interface: the calls Wireshark and tshark make on
/// an extcap program, and the options xcap offers them.
#[derive(Debug, Args, Default)]
pub struct ExtcapArgs {
    /// Link xcap into Wireshark's extcap folder (the one `tshark -G
    /// folders` names), or into DIR, so that Wireshark lists its interfaces
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "")]
    pub extcap_install: Option<String>,

    /// Wireshark: list xcap's interfaces (xcap-IFACE, xcap-any)
    #[arg(long)]
    pub extcap_interfaces: bool,

    /// Wireshark: the interface a call is about
    #[arg(long, value_name = "NAME")]
    pub extcap_interface: Option<String>,

    /// Wireshark: the link types of --extcap-interface
    #[arg(long)]
    pub extcap_dlts: bool,

    /// Wireshark: the options of --extcap-interface (capture filter, hook,
    /// direction)
    #[arg(long)]
    pub extcap_config: bool,

    /// Wireshark: its version (xcap answers every version alike)
    #[arg(long, value_name = "VERSION")]
    pub extcap_version: Option<String>,

    /// Wireshark: capture on --extcap-interface into --fifo
    #[arg(long)]
    pub capture: bool,

    /// Wireshark: the pipe --capture writes pcap into
    #[arg(long, value_name = "PATH")]
    pub fifo: Option<String>,

    /// Wireshark: the capture filter (checked alone, without --capture)
    #[arg(long, value_name = "EXPRESSION")]
    pub extcap_capture_filter: Option<String>,

    /// Wireshark option: a filter expression (with a capture filter, both
    /// must match)
    #[arg(long, value_name = "EXPRESSION")]
    pub extcap_filter: Option<String>,

    /// Wireshark option: the hook, tc or xdp
    #[arg(long, value_name = "HOOK")]
    pub extcap_hook: Option<String>,

    /// Wireshark option: the direction, auto (what the hook sees), in, out
    /// or inout
    #[arg(long, value_name = "DIRECTION")]
    pub extcap_direction: Option<String>,
}

/// Tracing-hook flags.
#[derive(Debug, Args, Default)]
pub struct TraceArgs {
    /// Capture at a tracepoint: kfree_skb (with the drop reason),
    /// consume_skb, netif_receive_skb, net_dev_queue, net_dev_xmit (repeat,
    /// or separate with commas). With -i IFACE --tc or --xdp too, one run
    /// follows each packet across both by its id (-w in pcapng)
    #[arg(long = "trace", value_name = "TRACEPOINT", value_delimiter = ',')]
    pub trace: Vec<String>,

    /// Capture at the entry of kernel function FUNC, on its struct sk_buff *
    /// argument (found in the kernel BTF; FUNC:N takes argument N)
    #[arg(long = "fentry", value_name = "FUNC[:N]")]
    pub fentry: Option<String>,

    /// Capture at the exit of kernel function FUNC: its struct sk_buff *
    /// argument after it ran (at most 256 bytes), with its return value
    #[arg(long = "fexit", value_name = "FUNC[:N]")]
    pub fexit: Option<String>,

    /// Capture what an XDP program already loaded gets and, with its
    /// verdict, what it leaves (fentry/fexit on it; -Q in, out or inout):
    /// PROG is its id, name, pinned path, or the interface it is attached to
    #[arg(long = "xdp-hook", value_name = "PROG")]
    pub xdp_hook: Option<String>,

    /// Record the kernel stack with each packet: printed after the packet
    /// line, and in the pcapng comment with -w
    #[arg(long)]
    pub stack: bool,
}

/// tcpdump's printing flags.
#[derive(Debug, Args, Default, Clone)]
pub struct PrintArgs {
    /// Time stamps: -t none, -tt seconds since 1970, -ttt time since the
    /// previous packet, -tttt date and time, -ttttt time since the first
    /// packet (as tcpdump)
    #[arg(short = 't', action = ArgAction::Count)]
    pub time: u8,

    /// Print the link-level header on each line (MAC addresses, ethertype)
    #[arg(short = 'e')]
    pub link_header: bool,

    /// Print each packet's bytes in hex after its line, from the network
    /// header (-xx: from the link header)
    #[arg(short = 'x', action = ArgAction::Count)]
    pub hex: u8,

    /// Print each packet's bytes in hex and ASCII after its line, from the
    /// network header (-XX: from the link header)
    #[arg(short = 'X', action = ArgAction::Count)]
    pub hex_ascii: u8,

    /// Print each packet's bytes in ASCII after its line, from the network
    /// header (-AA: from the link header)
    #[arg(short = 'A', action = ArgAction::Count)]
    pub ascii: u8,

    /// Line-buffered output: each packet's lines are written out at once
    /// (without it, a batch at a time), for `xcap -l ... | grep`
    #[arg(short = 'l')]
    pub line_buffered: bool,
}

/// `xcap compile`'s flags.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    xcap compile icmp -o icmp.o --program xdp\n      \
        ip link set dev eth0 xdp obj icmp.o sec xdp\n  \
    xcap compile 'tcp port 80' -o web.o --program tc --invert\n      \
        tc filter add dev eth0 ingress bpf da obj web.o sec tc\n  \
    xcap compile 'udp port 53' -o dns.o --name is_dns\n      \
        bpftool gen object prog.o caller.o dns.o   (caller: extern __u32 is_dns(void *ctx, void *start, void *end, __u32 wirelen);)")]
pub struct CompileArgs {
    /// Write the object to FILE ('-' for stdout)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: String,

    /// What to write: a function object to link (none), or a complete XDP
    /// or TC program (sections `xdp`; `tc` and `classifier`)
    #[arg(long, value_enum, default_value_t = ProgramArg::None)]
    pub program: ProgramArg,

    /// Link type to compile for (EN10MB, RAW, LINUX_SLL, ... or a number)
    #[arg(short = 'y', long, value_name = "LINKTYPE", default_value = "EN10MB")]
    pub linktype: String,

    /// Packet access: packet pointers (direct), bpf_skb_load_bytes (skb, TC
    /// only) or bpf_probe_read_kernel (probe, function objects only)
    #[arg(long, value_enum, default_value_t = ModeArg::Direct)]
    pub mode: ModeArg,

    /// Hook the filter runs at (what `inbound`, `ifindex` read); default:
    /// xdp for --program xdp, tc-ingress for tc, none (no ancillary loads)
    /// for a function object
    #[arg(long, value_enum)]
    pub hook: Option<CompileHookArg>,

    /// Snap length: the value the filter returns on a match (0 means 262144)
    #[arg(short = 's', long, value_name = "SNAPLEN", allow_hyphen_values = true)]
    pub snaplen: Option<String>,

    /// Drop the matching packets and pass the others (programs only)
    #[arg(long)]
    pub invert: bool,

    /// Let jumps past 32,767 instructions be `gotol` (Linux 6.6+, 6.1.72+)
    /// instead of chains of `ja`, which every kernel loads
    #[arg(long)]
    pub gotol: bool,

    /// Name of the exported function (function objects only)
    #[arg(long, value_name = "FUNC", default_value = FUNCTION_NAME)]
    pub name: String,

    /// The filter expression; words are joined with spaces, as tcpdump does
    #[arg(value_name = "EXPRESSION", required = true)]
    pub expression: Vec<String>,
}

/// `xcap compile --name`'s default.
pub const FUNCTION_NAME: &str = "xcap_filter";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Direct,
    Skb,
    Probe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HookArg {
    Xdp,
    TcIngress,
    TcEgress,
    Socket,
    Offline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Kernel,
    Vm,
    Libpcap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    In,
    Out,
    Inout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    Native,
    Generic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgramArg {
    None,
    Xdp,
    Tc,
}

/// `xcap compile --hook`: where the filter object will run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompileHookArg {
    None,
    Xdp,
    TcIngress,
    TcEgress,
    Socket,
}
