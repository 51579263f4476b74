//! Section 2: capture overhead.
//!
//! A veth pair between two private network namespaces (`xbg<pid>` sends
//! with trafgen, `xbc<pid>` receives and captures). 72-byte UDP frames, 1%
//! or 100% of them matching the filter, sent by one trafgen worker either
//! at its maximum rate (PACKET_MMAP) or at a fixed offered rate (`-b`).
//!
//! Each run measures:
//! - over a fixed window after a warm-up: busy CPU time of all cores from
//!   /proc/stat (everything but idle and iowait) divided by the frames the
//!   receiving veth processed in the window (its rx_packets), the per-core
//!   busy share, and the CPU time of processes that are neither ours nor
//!   kernel threads (a gate: runs disturbed by other work are repeated,
//!   never corrected);
//! - over the whole run (tool started and listening before the generator
//!   starts; counters read after the generator has exited and the tool has
//!   had time to drain): every stage a frame passes, from trafgen's own
//!   count to the tool's three counter lines, so a lost frame is found where
//!   it was lost.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::stats::{median_and_half_iqr, median_min_max, median_ms};

/// Addresses are used only inside the two namespaces.
const GEN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x01];
const CAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x02];
const GEN_IF: &str = "xbv0";
const CAP_IF: &str = "xbv1";
const FILTER: &str = "udp port 9";
/// A filter no frame of the benchmark matches (they go to ports 9 and 10):
/// what the filter alone costs, with nothing captured.
const FILTER_NONE: &str = "udp port 11";
const SNAPLEN: &str = "96";
const FRAME_LEN: usize = 72;
/// The fixed offered rate unless `--rate` says otherwise (lowered when a
/// setup's maximum throughput is not comfortably above it).
const DEFAULT_RATE: u64 = 150_000;
/// From the generator's exit to the closing counters: longer than
/// tcpdump's 1 s buffer timeout (TPACKET_V3 hands over a partly filled
/// block only when it expires) and xcap's 50 ms poll.
const DRAIN: Duration = Duration::from_millis(1200);
/// Generator time before the window of an own-cost run: the BPF
/// statistics need no settled throughput, only the setup in place.
const OWN_COST_WARMUP: Duration = Duration::from_millis(500);

pub struct Config {
    /// Measurement window per run.
    pub window: Duration,
    /// Generator running before the window opens.
    pub warmup: Duration,
    /// Runs per (setup, matching, rate); the report gives the median and
    /// the spread.
    pub runs: usize,
    /// Fixed offered rate in packets/s; `None`: `DEFAULT_RATE`, lowered
    /// to 60% of the slowest setup's maximum throughput if that is less.
    pub rate: Option<u64>,
    pub xcap: Option<PathBuf>,
    pub startup_runs: usize,
    /// bench/c, for pass.c.
    pub c_dir: PathBuf,
    /// A run whose window saw more than this share of the machine's CPU
    /// time spent by other processes is repeated once.
    pub max_other_share: f64,
    /// Only the setups whose names contain one of these (for trying the
    /// method out; the report is then partial).
    pub only: Option<Vec<String>>,
    /// Rounds of the own-cost phase (BPF statistics, each setup next to
    /// its bare program) and the window of each run.
    pub prog_rounds: usize,
    pub prog_window: Duration,
}

fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ---------------------------------------------------------------------------
// Counters inside a namespace

/// `/proc/net/dev` and a socket, both opened inside a network namespace, so
/// its counters can be read from here without spawning anything (a spawn
/// inside the measurement window would be CPU time of its own).
struct NsView {
    dev: File,
    sock: OwnedFd,
}

impl NsView {
    fn open(ns: &str) -> Result<NsView> {
        let nsf = File::open(format!("/run/netns/{ns}"))
            .with_context(|| format!("opening /run/netns/{ns}"))?;
        std::thread::spawn(move || -> Result<NsView> {
            // SAFETY: setns on this thread only; it exits right after.
            if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns: {}", std::io::Error::last_os_error());
            }
            // A /proc/net file stays bound to the namespace it was opened in.
            let dev = File::open("/proc/thread-self/net/dev")?;
            // SAFETY: plain socket(2); the descriptor is owned below.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                bail!("socket: {}", std::io::Error::last_os_error());
            }
            // SAFETY: a descriptor we just got.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(NsView { dev, sock })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("netns thread panicked"))?
    }

    /// (rx_packets, rx_dropped, tx_packets, tx_dropped) of `iface`.
    fn dev(&mut self, iface: &str) -> Result<[u64; 4]> {
        let mut s = String::new();
        self.dev.seek(SeekFrom::Start(0))?;
        self.dev.read_to_string(&mut s)?;
        for line in s.lines() {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            if name.trim() != iface {
                continue;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if f.len() < 12 {
                bail!("short /proc/net/dev line: {line}");
            }
            // rx: bytes packets errs drop ...; tx (from 8): bytes packets errs drop
            return Ok([f[1], f[3], f[9], f[11]]);
        }
        bail!("{iface} not in /proc/net/dev")
    }
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;

#[repr(C)]
struct Ifreq {
    name: [u8; 16],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// `ethtool -S` without the ethtool binary: SIOCETHTOOL on a socket of the
/// interface's namespace.
struct Ethtool {
    names: Vec<String>,
}

fn ethtool_ioctl(sock: &OwnedFd, iface: &str, buf: &mut [u64]) -> std::io::Result<()> {
    let mut ifr = Ifreq {
        name: [0; 16],
        data: buf.as_mut_ptr() as *mut libc::c_void,
        _pad: [0; 16],
    };
    for (d, s) in ifr.name.iter_mut().zip(iface.bytes().take(15)) {
        *d = s;
    }
    // SAFETY: ifr points at a live buffer big enough for the command in it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Ethtool {
    fn new(sock: &OwnedFd, iface: &str) -> std::io::Result<Ethtool> {
        // struct ethtool_drvinfo: 196 bytes, n_stats at 180.
        let mut info = vec![0u64; 25];
        info[0] = ETHTOOL_GDRVINFO as u64;
        ethtool_ioctl(sock, iface, &mut info)?;
        let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_le_bytes()).collect();
        let n = u32::from_le_bytes(bytes[180..184].try_into().unwrap()) as usize;
        // struct ethtool_gstrings: cmd, string_set, len, then len * 32 bytes.
        let mut strings = vec![0u64; (12 + n * 32).div_ceil(8)];
        strings[0] = ETHTOOL_GSTRINGS as u64 | ((ETH_SS_STATS as u64) << 32);
        strings[1] = n as u64;
        ethtool_ioctl(sock, iface, &mut strings)?;
        let bytes: Vec<u8> = strings.iter().flat_map(|w| w.to_le_bytes()).collect();
        let names = (0..n)
            .map(|i| {
                let s = &bytes[12 + i * 32..12 + (i + 1) * 32];
                let end = s.iter().position(|&b| b == 0).unwrap_or(32);
                String::from_utf8_lossy(&s[..end]).into_owned()
            })
            .collect();
        Ok(Ethtool { names })
    }

    /// Sum of the counters whose names say drops or errors (veth: the
    /// per-queue `drops` of its NAPI ring, `xdp_drops`, `xdp_tx_errors`,
    /// `xdp_xmit_errors`).
    fn drops(&self, sock: &OwnedFd, iface: &str) -> std::io::Result<u64> {
        let n = self.names.len();
        let mut buf = vec![0u64; 1 + n];
        buf[0] = ETHTOOL_GSTATS as u64 | ((n as u64) << 32);
        ethtool_ioctl(sock, iface, &mut buf)?;
        Ok(self
            .names
            .iter()
            .zip(&buf[1..])
            .filter(|(name, _)| name.contains("drops") || name.contains("errors"))
            .map(|(_, v)| v)
            .sum())
    }
}

/// Backlog drops (column 2 of /proc/net/softnet_stat), summed over CPUs.
fn backlog_drops() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/net/softnet_stat")?;
    Ok(s.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|x| u64::from_str_radix(x, 16).unwrap_or(0))
        .sum())
}

/// The two namespaces; deleted on drop (which deletes the veth pair).
struct Netns {
    gen: String,
    cap: String,
    gen_view: NsView,
    cap_view: NsView,
    ethtool: Option<Ethtool>,
}

impl Netns {
    fn new() -> Result<Netns> {
        let id = std::process::id();
        let gen = format!("xbg{id}");
        let cap = format!("xbc{id}");
        sh(&["ip", "netns", "add", &gen])?;
        let r = (|| {
            sh(&["ip", "netns", "add", &cap])?;
            // No IPv6 (router solicitations, MLD and DAD frames would cross
            // the pair and spoil the counts).
            for ns in [&gen, &cap] {
                sh(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ])?;
            }
            sh(&[
                "ip", "-n", &gen, "link", "add", GEN_IF, "type", "veth", "peer", "name", CAP_IF,
                "netns", &cap,
            ])?;
            sh(&[
                "ip",
                "-n",
                &gen,
                "link",
                "set",
                GEN_IF,
                "address",
                &mac(GEN_MAC),
                "up",
            ])?;
            sh(&[
                "ip",
                "-n",
                &cap,
                "link",
                "set",
                CAP_IF,
                "address",
                &mac(CAP_MAC),
                "up",
            ])?;
            sh(&["ip", "-n", &cap, "link", "set", "lo", "up"])?;
            // The receiver owns the destination address (frames go up to
            // UDP) but has no route back to the sender, so it sends
            // nothing: no ARP, no ICMP port unreachable.
            sh(&[
                "ip",
                "-n",
                &cap,
                "addr",
                "add",
                "10.99.0.2/32",
                "dev",
                CAP_IF,
            ])?;
            let gen_view = NsView::open(&gen)?;
            let cap_view = NsView::open(&cap)?;
            let ethtool = Ethtool::new(&cap_view.sock, CAP_IF).ok();
            Ok(Netns {
                gen: gen.clone(),
                cap: cap.clone(),
                gen_view,
                cap_view,
                ethtool,
            })
        })();
        if r.is_err() {
            let _ = sh(&["ip", "netns", "del", &gen]);
            let _ = sh(&["ip", "netns", "del", &cap]);
        }
        r
    }

    fn counters(&mut self) -> Result<Counters> {
        let [_, _, tx_packets, tx_dropped] = self.gen_view.dev(GEN_IF)?;
        let [rx_packets, rx_dropped, _, _] = self.cap_view.dev(CAP_IF)?;
        let veth_drops = match &self.ethtool {
            Some(e) => e.drops(&self.cap_view.sock, CAP_IF).ok(),
            None => None,
        };
        Ok(Counters {
            tx_packets,
            tx_dropped,
            rx_packets,
            rx_dropped,
            backlog_drops: backlog_drops()?,
            veth_drops,
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.gen]);
        let _ = sh(&["ip", "netns", "del", &self.cap]);
    }
}

#[derive(Clone, Copy, Default)]
struct Counters {
    /// Sender veth: frames handed to the peer, and refused.
    tx_packets: u64,
    tx_dropped: u64,
    /// Receiving veth (its rx_packets is the frames it processed: in NAPI
    /// mode the frames its poll took off the ring, which XDP runs on).
    rx_packets: u64,
    rx_dropped: u64,
    /// softnet_stat column 2, all CPUs: netif_rx backlog full.
    backlog_drops: u64,
    /// ethtool -S drops/errors of the receiving veth, if readable.
    veth_drops: Option<u64>,
}

impl Counters {
    fn delta(&self, a: &Counters) -> Counters {
        Counters {
            tx_packets: self.tx_packets - a.tx_packets,
            tx_dropped: self.tx_dropped - a.tx_dropped,
            rx_packets: self.rx_packets - a.rx_packets,
            rx_dropped: self.rx_dropped - a.rx_dropped,
            backlog_drops: self.backlog_drops - a.backlog_drops,
            veth_drops: match (self.veth_drops, a.veth_drops) {
                (Some(b), Some(a)) => Some(b - a),
                _ => None,
            },
        }
    }
}

// ---------------------------------------------------------------------------
// CPU time

/// Per CPU: busy jiffies (user, nice, system, irq, softirq; guest time is
/// already inside user) and all jiffies (busy + idle + iowait + steal).
/// Steal is time this VM's CPU was runnable but the host ran something
/// else: not CPU this machine spent, and it varies with the host's load, so
/// it is kept out of "busy" and reported on its own.
struct CpuSample {
    busy: Vec<u64>,
    all: Vec<u64>,
    steal: u64,
}

fn cpu_sample() -> Result<CpuSample> {
    let s = std::fs::read_to_string("/proc/stat")?;
    let mut out = CpuSample {
        busy: Vec::new(),
        all: Vec::new(),
        steal: 0,
    };
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let Some(name) = it.next() else { continue };
        if !name.starts_with("cpu") || name == "cpu" {
            continue;
        }
        let f: Vec<u64> = it.map(|x| x.parse().unwrap_or(0)).collect();
        let g = |i: usize| f.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = g(0) + g(1) + g(2) + g(5) + g(6);
        out.busy.push(busy);
        out.all.push(busy + g(3) + g(4) + g(7));
        out.steal += g(7);
    }
    if out.busy.is_empty() {
        bail!("no cpuN lines in /proc/stat");
    }
    Ok(out)
}

fn ns_per_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    1e9 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// utime + stime + cutime + cstime of every process that is neither ours
/// (this process and its descendants: trafgen, the capture tool) nor a
/// kernel thread. Children reaped during a window show up in their parent's
/// cutime/cstime, so short-lived compilers and shells are seen too.
fn other_ticks() -> HashMap<u32, u64> {
    let me = std::process::id();
    let mut info = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = st.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() < 15 {
                continue;
            }
            let ppid: u32 = f[1].parse().unwrap_or(0);
            let ticks: u64 = f[11..15]
                .iter()
                .map(|x| x.parse::<u64>().unwrap_or(0))
                .sum();
            info.insert(pid, (ppid, ticks));
        }
    }
    let ours_or_kernel = |mut pid: u32| {
        for _ in 0..64 {
            if pid == me || pid == 2 {
                return true;
            }
            match info.get(&pid) {
                Some(&(ppid, _)) if ppid != 0 => pid = ppid,
                _ => return false,
            }
        }
        false
    };
    info.iter()
        .filter(|(&pid, _)| !ours_or_kernel(pid))
        .map(|(&pid, &(_, t))| (pid, t))
        .collect()
}

/// Run time in ns (/proc/PID/task/TID/schedstat, first field) of every
/// thread of our descendants (trafgen, the capture tool) and of the
/// ksoftirqd threads. The kernel charges softirq work to the task it
/// interrupts (no IRQ time accounting here), so this holds the generator's
/// send path, the veth receive path and the hooks (run in softirq on the
/// generator's CPU, in its context or ksoftirqd's) and the tool's user and
/// kernel time; it misses interrupt work that lands on idle or on other
/// tasks. Nanosecond resolution, and other processes do not enter it.
fn our_task_ns() -> u64 {
    let me = std::process::id();
    let mut parent = HashMap::new();
    let mut softirqd = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((head, rest)) = st.rsplit_once(')') else {
                continue;
            };
            if head.contains("(ksoftirqd/") {
                softirqd.push(pid);
            }
            let ppid: u32 = rest
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            parent.insert(pid, ppid);
        }
    }
    let ours = |mut pid: u32| {
        for _ in 0..64 {
            match parent.get(&pid) {
                Some(&p) if p == me => return true,
                Some(&p) if p > 1 => pid = p,
                _ => return false,
            }
        }
        false
    };
    let mut ns = 0;
    for pid in parent.keys().copied().filter(|&p| ours(p)).chain(softirqd) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns
}

/// Ticks spent by other processes between two [`other_ticks`] snapshots
/// (a process born in between counts whole; one that died is seen through
/// its parent, which can only overcount: the gate errs towards repeating).
fn other_delta(a: &HashMap<u32, u64>, b: &HashMap<u32, u64>) -> u64 {
    b.iter()
        .map(|(pid, t)| t.saturating_sub(a.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// Waits (at most `max`) until the machine is quiet: less than 5% of all
/// CPU time busy over half a second. Returns how long it waited.
fn wait_quiet(max: Duration) -> Duration {
    let t = Instant::now();
    while t.elapsed() < max {
        let Ok(a) = cpu_sample() else { break };
        std::thread::sleep(Duration::from_millis(500));
        let Ok(b) = cpu_sample() else { break };
        let busy: u64 = b.busy.iter().sum::<u64>() - a.busy.iter().sum::<u64>();
        let all: u64 = b.all.iter().sum::<u64>() - a.all.iter().sum::<u64>();
        if all > 0 && (busy as f64) < 0.05 * all as f64 {
            break;
        }
    }
    t.elapsed()
}

// ---------------------------------------------------------------------------
// Traffic

/// An IPv4 header checksum.
fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// trafgen configuration: 72-byte Ethernet/IPv4/UDP frames (valid IP
/// checksum, UDP checksum 0) to the receiving side's MAC and address, one
/// in `every` to UDP port 9 (matching), the rest to port 10. trafgen sends
/// them round robin from the first, so after N frames ceil(N / every) were
/// matching.
fn trafgen_conf(every: usize) -> String {
    let mut s = String::new();
    for i in 0..every {
        let f = frame(if i == 0 { 9 } else { 10 });
        let _ = writeln!(
            s,
            "{{ {} }}",
            f.iter()
                .map(|b| format!("{b:#04x}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}

/// One of the generator's frames: to UDP port `dport` (9 matches).
fn frame(dport: u16) -> Vec<u8> {
    {
        let mut f = Vec::new();
        f.extend_from_slice(&CAP_MAC);
        f.extend_from_slice(&GEN_MAC);
        f.extend_from_slice(&[0x08, 0x00]);
        let ip_len = (FRAME_LEN - 14) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&ip_len.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 99, 0, 1, 10, 99, 0, 2]);
        let c = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&4000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&(ip_len - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.resize(FRAME_LEN, 0x5a);
        f
    }
}

/// trafgen in its own process group: it forks its worker, and only a
/// signal to the whole group stops the worker (a SIGINT to the parent
/// alone leaves the worker sending forever).
struct Generator {
    child: Child,
    out: mpsc::Receiver<String>,
}

impl Generator {
    fn start(ns: &str, conf: &Path, rate: Option<u64>) -> Result<Generator> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "trafgen", "-o", GEN_IF, "-i"])
            .arg(conf)
            .args(["--cpus", "1", "--no-sock-mem", "--no-cpu-stats"]);
        if let Some(r) = rate {
            cmd.args(["-b", &format!("{r}pps")]);
        }
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting trafgen")?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stdout).read_to_string(&mut s);
            let _ = tx.send(s);
        });
        Ok(Generator { child, out: rx })
    }

    /// Stops trafgen and returns the frames it says it sent.
    fn stop(mut self) -> Result<Option<u64>> {
        let pg = self.child.id() as i32;
        // SAFETY: signalling the process group of a child we started.
        unsafe { libc::kill(-pg, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe { libc::kill(-pg, libc::SIGKILL) };
                let _ = self.child.wait();
                bail!("trafgen did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = self
            .out
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        Ok(out
            .lines()
            .find(|l| l.contains("packets outgoing"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok()))
    }
}

// ---------------------------------------------------------------------------
// Capture tools

/// What to run on the capture side.
#[derive(Clone)]
enum Setup {
    None,
    BareTc,
    /// Mode (`xdpgeneric`, `xdpdrv`) and section (`xdp`, `xdp.frags`).
    BareXdp(&'static str, &'static str),
    /// The hand-written C filter of bench/c/programs.c, which passes every
    /// packet: at XDP (`xdp.frags`, this mode), or at TC (clsact, `da`).
    HandXdp(&'static str),
    HandTc,
    Tcpdump,
    /// xcap's binary and options, and the filter.
    Xcap(Vec<String>, &'static str),
}

impl Setup {
    fn is_tool(&self) -> bool {
        matches!(self, Setup::Tcpdump | Setup::Xcap(..))
    }
}

/// The objects `ip link` and `tc` attach: bench/c/pass.c, and
/// bench/c/programs.c with its sections.
struct Objects {
    pass: PathBuf,
    hand: PathBuf,
}

impl Objects {
    fn build(c_dir: &Path) -> Result<Objects> {
        let dir = std::env::temp_dir();
        let id = std::process::id();
        let objs = Objects {
            pass: dir.join(format!("xcap-bench-pass-{id}.o")),
            hand: dir.join(format!("xcap-bench-hand-{id}.o")),
        };
        for (src, obj, flags) in [
            ("pass.c", &objs.pass, &[][..]),
            (
                "programs.c",
                &objs.hand,
                &["-mcpu=v3", "-DLIVE_SECTIONS"][..],
            ),
        ] {
            let mut args = vec!["clang", "-O2", "-target", "bpf"];
            args.extend(flags);
            let src = c_dir.join(src);
            args.extend(["-c", src.to_str().unwrap(), "-o", obj.to_str().unwrap()]);
            sh(&args)?;
        }
        Ok(objs)
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pass);
        let _ = std::fs::remove_file(&self.hand);
    }
}

/// A capture command started in the capture namespace, listening.
pub(crate) struct Tool {
    child: Child,
    lines: mpsc::Receiver<String>,
    startup: Duration,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct ToolStats {
    captured: u64,
    received: u64,
    dropped: u64,
}

fn interrupt(child: &mut Child) -> Result<()> {
    // SAFETY: signalling a child we started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.wait();
    Ok(())
}

impl Tool {
    /// Starts `cmd` in namespace `ns` and waits until it says it is
    /// listening.
    pub(crate) fn start(ns: &str, cmd: &[String]) -> Result<Tool> {
        let t = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", cmd[0]))?;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10).saturating_sub(t.elapsed())) {
                Ok(line) => {
                    if line.contains("listening on") {
                        return Ok(Tool {
                            child,
                            lines: rx,
                            startup: t.elapsed(),
                        });
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = interrupt(&mut child);
                    bail!("{} did not start listening: {}", cmd[0], seen.join(" / "));
                }
            }
        }
    }

    /// SIGINT, then tcpdump's three counter lines.
    pub(crate) fn stop(mut self) -> Result<Option<ToolStats>> {
        interrupt(&mut self.child)?;
        // The reader thread ends at EOF; take every line it still has.
        let mut lines = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        let num = |key: &str| -> Option<u64> {
            lines
                .iter()
                .find(|l| l.contains(key))
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
        };
        Ok(Some(ToolStats {
            captured: match num("packets captured") {
                Some(n) => n,
                None => return Ok(None),
            },
            received: num("received by filter").unwrap_or(0),
            dropped: num("dropped by kernel").unwrap_or(0),
        }))
    }
}

fn capture_cmd(setup: &Setup) -> Option<Vec<String>> {
    let base = |prog: &str| {
        vec![
            prog.to_string(),
            "-i".into(),
            CAP_IF.into(),
            "-s".into(),
            SNAPLEN.into(),
            "-w".into(),
            "/dev/null".into(),
        ]
    };
    match setup {
        Setup::Tcpdump => Some({
            let mut v = base("tcpdump");
            v.push(FILTER.into());
            v
        }),
        Setup::Xcap(extra, filter) => Some({
            let mut v = base(&extra[0]);
            v.extend(extra[1..].iter().cloned());
            v.push(filter.to_string());
            v
        }),
        _ => None,
    }
}

fn attach(n: &Netns, setup: &Setup, objs: &Objects) -> Result<()> {
    let tc = |obj: &Path| -> Result<()> {
        sh(&["tc", "-n", &n.cap, "qdisc", "add", "dev", CAP_IF, "clsact"])?;
        sh(&[
            "tc",
            "-n",
            &n.cap,
            "filter",
            "add",
            "dev",
            CAP_IF,
            "ingress",
            "bpf",
            "da",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "tc",
        ])?;
        Ok(())
    };
    let xdp = |mode: &str, obj: &Path, sec: &str| -> Result<()> {
        sh(&[
            "ip",
            "-n",
            &n.cap,
            "link",
            "set",
            "dev",
            CAP_IF,
            mode,
            "obj",
            obj.to_str().unwrap(),
            "sec",
            sec,
        ])?;
        Ok(())
    };
    match setup {
        Setup::BareTc => tc(&objs.pass),
        Setup::HandTc => tc(&objs.hand),
        Setup::BareXdp(mode, sec) => xdp(mode, &objs.pass, sec),
        Setup::HandXdp(mode) => xdp(mode, &objs.hand, "xdp.frags"),
        Setup::None | Setup::Tcpdump | Setup::Xcap(..) => Ok(()),
    }
}

fn detach(n: &Netns, setup: &Setup) -> Result<()> {
    match setup {
        Setup::BareTc | Setup::HandTc => {
            sh(&["tc", "-n", &n.cap, "qdisc", "del", "dev", CAP_IF, "clsact"])?;
        }
        Setup::BareXdp(mode, _) | Setup::HandXdp(mode) => {
            sh(&[
                "ip", "-n", &n.cap, "link", "set", "dev", CAP_IF, mode, "off",
            ])?;
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// One run

/// What one run measured.
#[derive(Clone)]
struct Run {
    // The window.
    secs: f64,
    busy_ticks: u64,
    /// Frames the receiving veth processed in the window.
    rx_window: u64,
    /// Busy share of each CPU in the window.
    cpu_busy: Vec<f64>,
    steal_ticks: u64,
    other_ticks: u64,
    /// [`our_task_ns`] over the window.
    task_ns: u64,
    ncpu: usize,
    // The whole run.
    /// trafgen's own count of frames sent.
    sent: Option<u64>,
    whole: Counters,
    tool: Option<ToolStats>,
    /// Matching frames per `every` sent.
    every: u64,
    /// With [`Plan::prog_stats`]: runs of the setup's BPF programs in the
    /// window and their summed run time (ns), from the kernel's statistics.
    prog: Option<(u64, u64)>,
}

impl Run {
    fn ns_per_packet(&self) -> f64 {
        self.busy_ticks as f64 * ns_per_tick() / self.rx_window.max(1) as f64
    }
    fn task_ns_per_packet(&self) -> f64 {
        self.task_ns as f64 / self.rx_window.max(1) as f64
    }
    fn kpps(&self) -> f64 {
        self.rx_window as f64 / self.secs / 1e3
    }
    /// Other processes' share of all CPU time in the window.
    fn other_share(&self) -> f64 {
        let all = self.secs * 1e9 / ns_per_tick() * self.ncpu as f64;
        self.other_ticks as f64 / all
    }
    fn steal_share(&self) -> f64 {
        let all = self.secs * 1e9 / ns_per_tick() * self.ncpu as f64;
        self.steal_ticks as f64 / all
    }
    /// Frames lost between trafgen and the receiving veth.
    fn lost_before_hook(&self) -> Option<u64> {
        Some(self.sent?.saturating_sub(self.whole.rx_packets))
    }
    /// Matching frames that reached the hook: every frame at 100%; at 1%
    /// ceil(frames / 100), exact when no frame was lost on the way (trafgen
    /// sends round robin from the matching frame).
    fn matching_at_hook(&self) -> u64 {
        self.whole.rx_packets.div_ceil(self.every)
    }
    /// captured + dropped == received by filter == matching at the hook.
    fn exact(&self) -> Option<bool> {
        let t = self.tool?;
        Some(t.captured + t.dropped == t.received && t.received == self.matching_at_hook())
    }
}

struct Plan<'a> {
    setup: &'a Setup,
    every: usize,
    rate: Option<u64>,
    /// Turn the kernel's BPF run-time statistics on for the window (they
    /// cost every BPF program two clock reads, so only in their own runs).
    prog_stats: bool,
    /// The generator runs `warmup`, then the window opens for `window`.
    warmup: Duration,
    window: Duration,
}

/// The programs the setups attach, by the names the kernel knows.
const PROG_NAMES: [&str; 8] = [
    "xcap_xdp",
    "xcap_tc",
    "xcap_tc_egress",
    "xdp_pass",
    "xdp_pass_frags",
    "tc_pass",
    "xdp_udp_port_9",
    "tc_udp_port_9",
];

/// (runs, run time in ns) summed over the loaded programs named in
/// [`PROG_NAMES`], per program id.
fn prog_runtimes() -> Result<HashMap<u64, (u64, u64)>> {
    let out = sh(&["bpftool", "prog", "show", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("bpftool's JSON")?;
    let mut m = HashMap::new();
    for p in v.as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("");
        if PROG_NAMES.contains(&name) {
            let id = p["id"].as_u64().unwrap_or(0);
            let runs = p["run_cnt"].as_u64().unwrap_or(0);
            let ns = p["run_time_ns"].as_u64().unwrap_or(0);
            m.insert(id, (runs, ns));
        }
    }
    Ok(m)
}

/// `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)`: statistics stay on while the
/// returned fd is open.
fn enable_bpf_stats() -> Result<OwnedFd> {
    let attr: [u32; 4] = [0, 0, 0, 0];
    // SAFETY: attr is a zeroed bpf_attr prefix (enable_stats.type = 0).
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 32, attr.as_ptr(), 16u32) };
    if fd < 0 {
        bail!("BPF_ENABLE_STATS: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn run_one(n: &mut Netns, p: &Plan, objs: &Objects) -> Result<Run> {
    attach(n, p.setup, objs)?;
    let r = run_attached(n, p);
    let d = detach(n, p.setup);
    let r = r?;
    d?;
    Ok(r)
}

fn run_attached(n: &mut Netns, p: &Plan) -> Result<Run> {
    let tool = match capture_cmd(p.setup) {
        Some(cmd) => Some(Tool::start(&n.cap, &cmd)?),
        None => None,
    };
    let conf =
        std::env::temp_dir().join(format!("xcap-bench-{}-{}.cfg", std::process::id(), p.every));
    std::fs::write(&conf, trafgen_conf(p.every))?;
    let mut inner = || -> Result<Run> {
        let a = n.counters()?;
        let gen = Generator::start(&n.gen, &conf, p.rate)?;
        let mut prog = None;
        let window = (|| -> Result<_> {
            std::thread::sleep(p.warmup);
            let stats_on = p.prog_stats.then(enable_bpf_stats).transpose()?;
            let progs0 = if p.prog_stats {
                prog_runtimes()?
            } else {
                HashMap::new()
            };
            let o0 = other_ticks();
            let (k0, c0, w0, t0) = (
                our_task_ns(),
                cpu_sample()?,
                n.cap_view.dev(CAP_IF)?[0],
                Instant::now(),
            );
            std::thread::sleep(p.window);
            // Same order as at the opening, so the three windows have the
            // same length.
            let (k1, c1, w1, secs) = (
                our_task_ns(),
                cpu_sample()?,
                n.cap_view.dev(CAP_IF)?[0],
                t0.elapsed().as_secs_f64(),
            );
            let o1 = other_ticks();
            if let Some(on) = stats_on {
                let progs1 = prog_runtimes()?;
                drop(on);
                let (mut runs, mut ns) = (0, 0);
                for (id, (r1, t1)) in progs1 {
                    let (r0, t0) = progs0.get(&id).copied().unwrap_or((0, 0));
                    runs += r1.saturating_sub(r0);
                    ns += t1.saturating_sub(t0);
                }
                prog = Some((runs, ns));
            }
            Ok((o0, o1, c0, c1, w0, w1, secs, k1.saturating_sub(k0)))
        })();
        let sent = gen.stop();
        let (o0, o1, c0, c1, w0, w1, secs, task_ns) = window?;
        let sent = sent?;
        // Let the tool drain what is in its buffers before the counters
        // close the run.
        std::thread::sleep(DRAIN);
        let b = n.counters()?;
        let cpu_busy = c1
            .busy
            .iter()
            .zip(&c0.busy)
            .zip(c1.all.iter().zip(&c0.all))
            .map(|((b1, b0), (a1, a0))| (b1 - b0) as f64 / (a1 - a0).max(1) as f64)
            .collect();
        Ok(Run {
            secs,
            busy_ticks: c1.busy.iter().sum::<u64>() - c0.busy.iter().sum::<u64>(),
            rx_window: w1 - w0,
            cpu_busy,
            steal_ticks: c1.steal - c0.steal,
            other_ticks: other_delta(&o0, &o1),
            task_ns,
            ncpu: c1.busy.len(),
            sent,
            whole: b.delta(&a),
            tool: None,
            every: p.every as u64,
            prog,
        })
    };
    let r = inner();
    let _ = std::fs::remove_file(&conf);
    // The tool is stopped whatever happened.
    let stats = tool.map(Tool::stop);
    let mut run = r?;
    if let Some(st) = stats {
        run.tool = st?;
        if run.tool.is_none() {
            bail!("the capture tool printed no counters");
        }
    }
    Ok(run)
}

// ---------------------------------------------------------------------------
// Report

/// A per-run figure.
type Metric = fn(&Run) -> f64;

/// Median, min and max of `f` over `runs`.
fn stats(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    median_min_max(runs.iter().map(f).collect())
}

fn cell(e: &anyhow::Error) -> String {
    format!("failed: {e:#}")
        .replace('|', "/")
        .replace('\n', " ")
}

/// `every` of 1% matching traffic (one frame in `every` matches).
const ONE_PCT: usize = 100;

fn pct(every: usize) -> &'static str {
    if every == 1 {
        "100%"
    } else {
        "1%"
    }
}

/// A setup of the own-cost phase, measured next to its group's bare program.
struct Member {
    name: &'static str,
    /// The name in the targets table's "the filter alone" list.
    short: &'static str,
    setup: Setup,
    /// Runs with 1% matching traffic only (the filter-alone setups).
    only_at_1pct: bool,
    /// xcap's capture program (a row of the targets table).
    xcap_program: bool,
}

/// A hook's bare pass program (name, setup) and what is measured next to it.
struct OwnCostGroup {
    bare: (&'static str, Setup),
    members: Vec<Member>,
}

/// The own-cost phase's setups: per hook, xcap's program, and at 1%
/// xcap with a filter matching nothing and the hand-written C filter.
fn own_cost_groups(
    xcap: &dyn Fn(&[&str]) -> Setup,
    xcap_ok: bool,
    only: Option<&[String]>,
) -> Vec<OwnCostGroup> {
    let nothing = |args: &[&str]| match xcap(args) {
        Setup::Xcap(v, _) => Setup::Xcap(v, FILTER_NONE),
        other => other,
    };
    let member = |name, short, setup, only_at_1pct, xcap_program| Member {
        name,
        short,
        setup,
        only_at_1pct,
        xcap_program,
    };
    let native = ["--xdp", "--xdp-mode", "native"];
    let generic = ["--xdp", "--xdp-mode", "generic"];
    let groups = vec![
        OwnCostGroup {
            bare: (
                "bare native-XDP pass program, frags",
                Setup::BareXdp("xdpdrv", "xdp.frags"),
            ),
            members: vec![
                member("`xcap --xdp` native", "", xcap(&native), false, true),
                member(
                    "`xcap --xdp` native, filter matching nothing",
                    "xcap",
                    nothing(&native),
                    true,
                    false,
                ),
                member(
                    "hand-written C filter, native XDP (frags)",
                    "hand-written C",
                    Setup::HandXdp("xdpdrv"),
                    true,
                    false,
                ),
            ],
        },
        OwnCostGroup {
            bare: (
                "bare generic-XDP pass program, frags",
                Setup::BareXdp("xdpgeneric", "xdp.frags"),
            ),
            members: vec![member(
                "`xcap --xdp` generic",
                "",
                xcap(&generic),
                false,
                true,
            )],
        },
        OwnCostGroup {
            bare: ("bare TC pass program", Setup::BareTc),
            members: vec![
                member("`xcap --tc`", "", xcap(&["--tc"]), false, true),
                member(
                    "`xcap --tc`, filter matching nothing",
                    "xcap",
                    nothing(&["--tc"]),
                    true,
                    false,
                ),
                member(
                    "hand-written C filter, TC",
                    "hand-written C",
                    Setup::HandTc,
                    true,
                    false,
                ),
            ],
        },
    ];
    let wanted = |name: &str| only.is_none_or(|o| o.iter().any(|w| name.contains(w.as_str())));
    groups
        .into_iter()
        .map(|mut g| {
            g.members
                .retain(|m| (xcap_ok || !matches!(m.setup, Setup::Xcap(..))) && wanted(m.name));
            g
        })
        .filter(|g| !g.members.is_empty())
        .collect()
}

/// One own-cost run: (program runs, ns per run), or why it failed.
type OwnCost = std::result::Result<(u64, f64), String>;

/// The own-cost runs: per (setup, matching), each round's result.
#[derive(Default)]
struct OwnCosts {
    runs: HashMap<(&'static str, usize), Vec<(usize, OwnCost)>>,
}

impl OwnCosts {
    fn record(&mut self, name: &'static str, every: usize, round: usize, r: OwnCost) {
        self.runs.entry((name, every)).or_default().push((round, r));
    }

    fn ok<'a>(
        &'a self,
        name: &'a str,
        every: usize,
    ) -> impl Iterator<Item = (usize, u64, f64)> + 'a {
        self.runs
            .iter()
            .filter(move |((n, e), _)| *n == name && *e == every)
            .flat_map(|(_, v)| v.iter())
            .filter_map(|(round, r)| r.as_ref().ok().map(|(runs, ns)| (*round, *runs, *ns)))
    }

    /// Median, min and max ns per run over the rounds, and the program
    /// runs counted in all of them.
    fn ns_per_run(&self, name: &str, every: usize) -> Option<(f64, f64, f64, u64)> {
        let v: Vec<f64> = self.ok(name, every).map(|(_, _, ns)| ns).collect();
        if v.is_empty() {
            return None;
        }
        let runs = self.ok(name, every).map(|(_, r, _)| r).sum();
        let (m, lo, hi) = median_min_max(v);
        Some((m, lo, hi, runs))
    }

    /// The median of the per-round differences with `bare`, half their
    /// interquartile range, and how many rounds had both.
    fn over_bare(&self, name: &str, bare: &str, every: usize) -> Option<(f64, f64, usize)> {
        let bare: HashMap<usize, f64> = self.ok(bare, every).map(|(r, _, ns)| (r, ns)).collect();
        let d: Vec<f64> = self
            .ok(name, every)
            .filter_map(|(r, _, ns)| Some(ns - bare.get(&r)?))
            .collect();
        if d.is_empty() {
            return None;
        }
        let pairs = d.len();
        let (m, spread) = median_and_half_iqr(d);
        Some((m, spread, pairs))
    }

    /// The first failure of (setup, matching), for a table cell.
    fn error(&self, name: &str, every: usize) -> Option<String> {
        self.runs
            .get(&(name, every))?
            .iter()
            .find_map(|(_, r)| r.as_ref().err().cloned())
    }
}

struct Row {
    name: &'static str,
    setup: Setup,
    /// The row whose pass program this setup adds to (for "over bare").
    bare: Option<&'static str>,
}

/// The measurements of one (rate, matching) table: per setup name, the
/// kept runs or why there are none.
type Results = HashMap<(&'static str, usize, bool), std::result::Result<Vec<Run>, String>>;

/// Runs section 2 and returns its markdown.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(s, "## 2. Capture overhead\n");
    let mut n = Netns::new()?;
    let objs = Objects::build(&cfg.c_dir)?;
    // Is xcap's live capture there?
    let xcap_note = match &cfg.xcap {
        None => Some("not measured: xcap live capture unavailable (no binary)".to_string()),
        Some(x) => {
            let cmd: Vec<String> = vec![
                x.display().to_string(),
                "-i".into(),
                CAP_IF.into(),
                "--xdp".into(),
                "-w".into(),
                "/dev/null".into(),
                FILTER.into(),
            ];
            match Tool::start(&n.cap, &cmd) {
                Ok(t) => {
                    t.stop()?;
                    None
                }
                Err(e) => Some(format!(
                    "not measured: xcap live capture unavailable ({})",
                    format!("{e:#}").replace('|', "/")
                )),
            }
        }
    };
    let xcap = |extra: &[&str]| -> Setup {
        let mut v = vec![cfg
            .xcap
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()];
        v.extend(extra.iter().map(|s| s.to_string()));
        Setup::Xcap(v, FILTER)
    };
    let rows: Vec<Row> = vec![
        Row {
            name: "no capture",
            setup: Setup::None,
            bare: None,
        },
        Row {
            name: "bare TC pass program",
            setup: Setup::BareTc,
            bare: None,
        },
        Row {
            name: "bare generic-XDP pass program",
            setup: Setup::BareXdp("xdpgeneric", "xdp"),
            bare: None,
        },
        Row {
            name: "bare generic-XDP pass program, frags",
            setup: Setup::BareXdp("xdpgeneric", "xdp.frags"),
            bare: None,
        },
        Row {
            name: "bare native-XDP pass program",
            setup: Setup::BareXdp("xdpdrv", "xdp"),
            bare: None,
        },
        Row {
            name: "bare native-XDP pass program, frags",
            setup: Setup::BareXdp("xdpdrv", "xdp.frags"),
            bare: None,
        },
        Row {
            name: "tcpdump",
            setup: Setup::Tcpdump,
            bare: None,
        },
        Row {
            name: "`xcap --tc`",
            setup: xcap(&["--tc"]),
            bare: Some("bare TC pass program"),
        },
        Row {
            name: "`xcap --xdp` generic",
            setup: xcap(&["--xdp", "--xdp-mode", "generic"]),
            bare: Some("bare generic-XDP pass program, frags"),
        },
        Row {
            name: "`xcap --xdp` native",
            setup: xcap(&["--xdp", "--xdp-mode", "native"]),
            bare: Some("bare native-XDP pass program, frags"),
        },
    ];
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| {
            cfg.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|w| r.name.contains(w.as_str())))
        })
        .collect();
    let measurable = |r: &Row| !(matches!(r.setup, Setup::Xcap(..)) && xcap_note.is_some());
    let mut results: Results = HashMap::new();
    let mut quiet_budget = Duration::from_secs(120);
    let mut contaminated = 0usize;
    let mut max_steal: f64 = 0.0;
    let mut fixed_rate = cfg.rate;
    for max_rate in [true, false] {
        let rate = if max_rate {
            None
        } else {
            let r = fixed_rate.unwrap_or_else(|| {
                // 60% of the slowest maximum throughput, at most the
                // default, in steps of 10 kpps.
                let slowest = results
                    .iter()
                    .filter(|((_, _, m), _)| *m)
                    .filter_map(|(_, r)| r.as_ref().ok())
                    .map(|runs| stats(runs, |r| r.kpps()).0 * 1e3)
                    .fold(f64::INFINITY, f64::min);
                let cap = (0.6 * slowest / 10_000.0).floor() as u64 * 10_000;
                DEFAULT_RATE.min(cap.max(10_000))
            });
            fixed_rate = Some(r);
            Some(r)
        };
        for rep in 0..cfg.runs {
            for every in [100usize, 1] {
                for row in rows.iter().filter(|r| measurable(r)) {
                    let key = (row.name, every, max_rate);
                    if matches!(results.get(&key), Some(Err(_))) {
                        continue;
                    }
                    let what = format!(
                        "{}, {} matching, {}, run {}/{}",
                        row.name,
                        pct(every),
                        rate.map_or("max rate".to_string(), |r| format!("{} kpps", r / 1000)),
                        rep + 1,
                        cfg.runs
                    );
                    log(&format!("capture: {what}"));
                    let plan = Plan {
                        setup: &row.setup,
                        every,
                        rate,
                        prog_stats: false,
                        warmup: cfg.warmup,
                        window: cfg.window,
                    };
                    // Repeat a run that other work disturbed (at most twice,
                    // after waiting for the machine to go quiet); keep the
                    // least disturbed one.
                    let mut best: Option<Run> = None;
                    let mut failure = None;
                    for attempt in 0..2 {
                        match run_one(&mut n, &plan, &objs) {
                            Ok(r) => {
                                log(&format!(
                                    "capture:   {:.0} kpps, {:.0} ns/packet (/proc/stat), {:.0} ns/packet (tasks), busy {}, other {:.2}%, steal {:.2}%{}",
                                    r.kpps(),
                                    r.ns_per_packet(),
                                    r.task_ns_per_packet(),
                                    r.cpu_busy
                                        .iter()
                                        .map(|b| format!("{:.0}%", b * 100.0))
                                        .collect::<Vec<_>>()
                                        .join("/"),
                                    r.other_share() * 100.0,
                                    r.steal_share() * 100.0,
                                    r.tool.map_or(String::new(), |t| format!(
                                        ", {} captured, {} received, {} dropped, {} reached",
                                        t.captured, t.received, t.dropped, r.whole.rx_packets
                                    ))
                                ));
                                let share = r.other_share();
                                let better = best.as_ref().is_none_or(|b| share < b.other_share());
                                if better {
                                    best = Some(r);
                                }
                                if share <= cfg.max_other_share {
                                    break;
                                }
                                log(&format!(
                                    "capture: other processes took {:.1}% of the CPU in the window{}",
                                    share * 100.0,
                                    if attempt < 1 { "; repeating" } else { "" }
                                ));
                                if attempt < 1 && !quiet_budget.is_zero() {
                                    let waited =
                                        wait_quiet(quiet_budget.min(Duration::from_secs(10)));
                                    quiet_budget = quiet_budget.saturating_sub(waited);
                                }
                            }
                            Err(e) => {
                                log(&format!("capture: {what}: {e:#}"));
                                failure = Some(cell(&e));
                                break;
                            }
                        }
                    }
                    match (best, failure) {
                        (Some(r), _) => {
                            if r.other_share() > cfg.max_other_share {
                                contaminated += 1;
                            }
                            max_steal = max_steal.max(r.steal_share());
                            if let Ok(v) = results.entry(key).or_insert_with(|| Ok(Vec::new())) {
                                v.push(r);
                            }
                        }
                        (None, Some(f)) => {
                            results.insert(key, Err(f));
                        }
                        (None, None) => unreachable!(),
                    }
                }
            }
        }
    }
    let fixed_rate = fixed_rate.unwrap_or(DEFAULT_RATE);

    // The programs' own run time, with the kernel's statistics on: as many
    // runs per (setup, matching) at the fixed rate as the other tables,
    // interleaved (one run moves by 10 ns from the next on this VM).
    // --- The programs' own cost: each setup measured next to its bare
    // program, round after round (BPF statistics on).
    let groups = own_cost_groups(&xcap, xcap_note.is_none(), cfg.only.as_deref());
    let mut own = OwnCosts::default();
    for every in [ONE_PCT, 1] {
        for round in 0..cfg.prog_rounds {
            for g in &groups {
                let mut members: Vec<(&'static str, &Setup)> =
                    std::iter::once((g.bare.0, &g.bare.1))
                        .chain(
                            g.members
                                .iter()
                                .filter(|m| every == ONE_PCT || !m.only_at_1pct)
                                .map(|m| (m.name, &m.setup)),
                        )
                        .collect();
                if members.len() < 2 {
                    continue;
                }
                // Alternate the order: drift within a round cancels out.
                if round % 2 == 1 {
                    members.reverse();
                }
                for (name, setup) in members {
                    log(&format!(
                        "capture: {name}, {} matching, {} kpps, BPF statistics on, round {}/{}",
                        pct(every),
                        fixed_rate / 1000,
                        round + 1,
                        cfg.prog_rounds
                    ));
                    let plan = Plan {
                        setup,
                        every,
                        rate: Some(fixed_rate),
                        prog_stats: true,
                        warmup: OWN_COST_WARMUP,
                        window: cfg.prog_window,
                    };
                    let r = run_one(&mut n, &plan, &objs).map_err(|e| cell(&e));
                    let r = r.and_then(|r| match r.prog {
                        Some((runs, ns)) if runs > 0 => Ok((runs, ns as f64 / runs as f64)),
                        _ => Err("no program runs counted".to_string()),
                    });
                    if let Ok((runs, per)) = &r {
                        log(&format!(
                            "capture:   {runs} program runs, {per:.1} ns per run"
                        ));
                    }
                    own.record(name, every, round, r);
                }
            }
        }
    }

    // --- Method.
    let _ = writeln!(
        s,
        "veth pair between two private namespaces (IPv6 off; the receiver owns the destination address \
         10.99.0.2/32 but has no route back, so nothing crosses the pair but the generator's frames). \
         trafgen (netsniff-ng, one worker: `-P 1`) sends 72-byte Ethernet/IPv4/UDP frames (valid IP checksum) \
         to the receiver's MAC and address, either at its maximum rate (PACKET_MMAP ring) or at a fixed offered \
         rate of {} kpps (`-b {}pps`: one `sendto` per frame and a sleep between). Filter `{FILTER}`, snaplen \
         {SNAPLEN}, captures written to /dev/null (`-w`). Matching traffic: 1% (one frame in 100 to port 9, \
         the rest to port 10) or 100%. Each (setup, matching, rate) is run {} times, interleaved (every setup \
         once, then again), and the tables give the median and the spread (min-max).\n",
        fixed_rate / 1000,
        fixed_rate,
        cfg.runs
    );
    let _ = writeln!(
        s,
        "**CPU ns/packet** (the issue's measure): busy time of all cores from /proc/stat (user, nice, system, \
         irq, softirq: everything but idle, iowait and steal) over a {:.0} s window opened {:.0} s after the \
         generator started, divided by the frames the receiving veth processed in that window (its rx_packets; \
         \"kpps\" is the same count per second). Nothing is subtracted. The generator, the receive path and the \
         capture tool all run on this 2-core machine, so the figure is the cost of sending, receiving and \
         capturing one frame. trafgen's worker is pinned to cpu0, and the veth receive path and the hooks run in \
         softirq on that same CPU; at the maximum rate cpu0 is saturated (\"busy %\", per core) and the figure \
         mostly follows throughput; at the fixed rate no core is saturated and differences between setups are \
         the extra CPU each spends per frame. /proc/stat counts in 10 ms units and is machine-wide. \
         **tasks ns/packet**: the same window and frames, but the CPU time is the run time (ns, \
         /proc/PID/task/TID/schedstat) of trafgen, the capture tool (all threads) and ksoftirqd: this kernel \
         charges softirq work to the task it interrupts, so that holds the send path, the receive path and the \
         hooks; it misses only interrupt work landing on idle or on other tasks, and other processes do not \
         enter it (in undisturbed runs it is within a few % of the /proc/stat figure). **Other work**: each \
         window also sums the CPU time of every process that is neither ours nor a kernel thread \
         (utime+stime+cutime+cstime from /proc/PID/stat); a run where that exceeds {:.0}% of the machine's CPU \
         time is repeated once, after waiting (up to 10 s) for the machine to go quiet, and the less disturbed \
         run is kept. \"other %\" is the largest such share among the kept runs; {} kept runs were still above \
         the limit (their /proc/stat figure includes that work; the tasks figure does not). Steal (time this \
         VM's CPUs were runnable while the host ran something else) is left out of busy: it is not CPU this \
         machine spent, and it comes and goes with the host's load; \"steal %\" is its largest share in a kept \
         window (at most {:.1}% overall).\n",
        cfg.window.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
        cfg.max_other_share * 100.0,
        contaminated,
        max_steal * 100.0
    );
    let _ = writeln!(
        s,
        "**Over no capture** is the setup's median minus the no-capture median of the same table; **over bare** \
         is an xcap setup's median minus the median of the bare pass program at the same hook and mode (clang -O2 \
         `return XDP_PASS` / `return TC_ACT_OK`; the bare TC program is attached with `tc ... clsact bpf da`, xcap \
         uses TCX on ingress and egress). xcap's XDP program is multi-buffer aware (`xdp.frags`, \
         BPF_F_XDP_HAS_FRAGS: packets larger than one buffer reach it whole instead of being refused or \
         linearised), and for such a program generic XDP and veth copy a non-linear skb into page-pool \
         pages where a plain program gets it linearised: the bare XDP programs are measured both ways, and \
         xcap's XDP rows are compared with the `frags` one of their mode.\n"
    );

    for max_rate in [true, false] {
        let _ = writeln!(
            s,
            "### {}\n",
            if max_rate {
                "2a. At the generator's maximum rate".to_string()
            } else {
                format!("2b. At a fixed offered rate of {} kpps", fixed_rate / 1000)
            }
        );
        let _ = writeln!(s, "| setup | matching | kpps | CPU ns/packet | min-max | over no capture | over bare | tasks ns/packet | min-max | over no capture | over bare | busy % (cpu0 / cpu1) | other % | steal % |");
        let _ = writeln!(
            s,
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        );
        for every in [100usize, 1] {
            let med = |name: &str, f: fn(&Run) -> f64| -> Option<f64> {
                results
                    .get(&(name, every, max_rate))?
                    .as_ref()
                    .ok()
                    .map(|runs| stats(runs, f).0)
            };
            for row in &rows {
                let p = pct(every);
                if !measurable(row) {
                    let _ = writeln!(
                        s,
                        "| {} | {p} | | {} | | | | | | | | | | |",
                        row.name,
                        xcap_note.as_deref().unwrap_or("")
                    );
                    continue;
                }
                match results.get(&(row.name, every, max_rate)) {
                    Some(Ok(runs)) => {
                        let (kpps, _, _) = stats(runs, |r| r.kpps());
                        let mut cols = Vec::new();
                        for f in [
                            Run::ns_per_packet as fn(&Run) -> f64,
                            Run::task_ns_per_packet,
                        ] {
                            let (m, lo, hi) = stats(runs, f);
                            let over = match (row.name, med("no capture", f)) {
                                ("no capture", _) | (_, None) => String::new(),
                                (_, Some(b)) => format!("{:+.0}", m - b),
                            };
                            let bare = row
                                .bare
                                .and_then(|b| med(b, f))
                                .map_or(String::new(), |b| format!("{:+.0}", m - b));
                            cols.push(format!("{m:.0} | {lo:.0}-{hi:.0} | {over} | {bare}"));
                        }
                        let ncpu = runs[0].cpu_busy.len();
                        let busy = (0..ncpu)
                            .map(|c| format!("{:.0}", stats(runs, |r| r.cpu_busy[c] * 100.0).0))
                            .collect::<Vec<_>>()
                            .join(" / ");
                        let other = runs.iter().map(|r| r.other_share()).fold(0.0, f64::max);
                        let steal = runs.iter().map(|r| r.steal_share()).fold(0.0, f64::max);
                        let _ = writeln!(
                            s,
                            "| {} | {p} | {kpps:.0} | {} | {busy} | {:.1} | {:.1} |",
                            row.name,
                            cols.join(" | "),
                            other * 100.0,
                            steal * 100.0
                        );
                    }
                    Some(Err(e)) => {
                        let _ = writeln!(s, "| {} | {p} | | {e} | | | | | | | | | | |", row.name);
                    }
                    None => {}
                }
            }
        }
        let _ = writeln!(s);
    }

    // --- Accounting.
    let _ = writeln!(s, "### Where every frame went\n");
    let _ = writeln!(
        s,
        "Whole-run counters, summed over the {} runs of each row: from before the generator starts (the tool is \
         already listening) to {:.1} s after it has exited, the tool still running; the tool's counters are the \
         three lines it prints on SIGINT right after. **sent**: trafgen's own count (\"packets outgoing\"). \
         **reached veth**: the receiving veth's rx_packets (the frames it processed; in NAPI mode, with XDP \
         attached, the frames its poll took off the ring, each of which XDP ran on). Losses before the hook, each \
         counted where it happens: the sender veth's tx_dropped (veth could not hand the frame over), the receiving \
         veth's rx_dropped, netif_rx backlog drops (/proc/net/softnet_stat column 2, all CPUs) and veth's own \
         ring and XDP counters (`ethtool -S`: every `*drops`/`*errors` counter, read with SIOCETHTOOL{}). \
         **matching at hook**: at 100% every frame that reached the veth; at 1% ceil(reached / 100), since trafgen \
         sends its 100 frames round robin from the matching one. **lost in tool**: matching at hook minus \
         captured. **exact**: runs where captured + dropped == received by filter == matching at hook.\n",
        cfg.runs,
        DRAIN.as_secs_f64(),
        if n.ethtool.is_none() {
            "; unreadable here, shown as n/a"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "| setup | rate | matching | sent | reached veth | sender tx_dropped | receiver rx_dropped | backlog drops | veth ring/XDP drops | matching at hook | received by filter | captured | dropped (tool) | lost in tool | exact |");
    let _ = writeln!(
        s,
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    let mut before_hook_total = 0u64;
    let mut sent_total = 0u64;
    let mut tool_lost: Vec<String> = Vec::new();
    let mut inexact: Vec<String> = Vec::new();
    for max_rate in [true, false] {
        let rate_name = if max_rate {
            "max".to_string()
        } else {
            format!("{} kpps", fixed_rate / 1000)
        };
        for every in [100usize, 1] {
            for row in rows.iter().filter(|r| measurable(r)) {
                let Some(Ok(runs)) = results.get(&(row.name, every, max_rate)) else {
                    continue;
                };
                let sum = |f: &dyn Fn(&Run) -> u64| runs.iter().map(f).sum::<u64>();
                let sent = runs.iter().map(|r| r.sent).sum::<Option<u64>>();
                let reached = sum(&|r| r.whole.rx_packets);
                sent_total += sent.unwrap_or(0);
                before_hook_total += runs
                    .iter()
                    .map(|r| r.lost_before_hook().unwrap_or(0))
                    .sum::<u64>();
                let veth = runs
                    .iter()
                    .map(|r| r.whole.veth_drops)
                    .sum::<Option<u64>>()
                    .map_or("n/a".to_string(), |v| v.to_string());
                let (tool_cols, exact) = if row.setup.is_tool()
                    && runs.iter().all(|r| r.tool.is_some())
                {
                    let t = |f: &dyn Fn(&ToolStats) -> u64| {
                        runs.iter()
                            .map(|r| f(r.tool.as_ref().unwrap()))
                            .sum::<u64>()
                    };
                    let at_hook = sum(&|r| r.matching_at_hook());
                    let captured = t(&|t| t.captured);
                    let lost = at_hook as i64 - captured as i64;
                    let ok = runs.iter().filter(|r| r.exact() == Some(true)).count();
                    if lost != 0 {
                        tool_lost.push(format!(
                            "{} at {}, {} matching: {} of {} ({:.3}%; the tool reported {} dropped)",
                            row.name,
                            rate_name,
                            pct(every),
                            lost,
                            at_hook,
                            lost as f64 * 100.0 / at_hook.max(1) as f64,
                            t(&|t| t.dropped)
                        ));
                    }
                    if ok != runs.len() {
                        inexact.push(format!(
                            "{} at {}, {} matching",
                            row.name,
                            rate_name,
                            pct(every)
                        ));
                    }
                    (
                        format!(
                            "{at_hook} | {} | {captured} | {} | {lost}",
                            t(&|t| t.received),
                            t(&|t| t.dropped)
                        ),
                        format!("{ok}/{}", runs.len()),
                    )
                } else {
                    (" | | | | ".to_string(), String::new())
                };
                let _ = writeln!(
                    s,
                    "| {} | {rate_name} | {} | {} | {reached} | {} | {} | {} | {veth} | {tool_cols} | {exact} |",
                    row.name,
                    pct(every),
                    sent.map_or("?".to_string(), |v| v.to_string()),
                    sum(&|r| r.whole.tx_dropped),
                    sum(&|r| r.whole.rx_dropped),
                    sum(&|r| r.whole.backlog_drops),
                );
            }
        }
    }
    let _ = writeln!(s);

    // Per run, 100% matching at the maximum rate: the hardest case.
    let _ = writeln!(
        s,
        "100% matching at the maximum rate, snaplen {SNAPLEN}, each run (\"unaccounted\": reached veth minus \
         captured minus dropped; 0 means every frame that reached the hook is either captured or counted as \
         dropped):\n"
    );
    let _ = writeln!(s, "| setup | run | sent | reached veth | lost before hook | received by filter | captured | dropped (tool) | unaccounted | captured % of reached |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for row in rows.iter().filter(|r| measurable(r) && r.setup.is_tool()) {
        let Some(Ok(runs)) = results.get(&(row.name, 1, true)) else {
            continue;
        };
        for (i, r) in runs.iter().enumerate() {
            let Some(t) = r.tool else { continue };
            let reached = r.whole.rx_packets;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {reached} | {} | {} | {} | {} | {} | {:.3} |",
                row.name,
                i + 1,
                r.sent.map_or("?".to_string(), |v| v.to_string()),
                r.lost_before_hook()
                    .map_or("?".to_string(), |v| v.to_string()),
                t.received,
                t.captured,
                t.dropped,
                reached as i64 - t.captured as i64 - t.dropped as i64,
                t.captured as f64 * 100.0 / reached.max(1) as f64
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "**Where losses happen.** Before any hook: {} of {} frames sent in all runs{}. In the tools: {}. \
         Counting: {}.\n",
        before_hook_total,
        sent_total,
        if before_hook_total == 0 {
            " (the veth pair, the backlog and the NAPI ring lost nothing)"
        } else {
            " (see the drop columns above for the stage)"
        },
        if tool_lost.is_empty() {
            "none; every matching frame that reached the hook was captured".to_string()
        } else {
            tool_lost.join("; ")
        },
        if inexact.is_empty() {
            "in every run captured + dropped == received by filter == matching frames at the hook".to_string()
        } else {
            format!("not exact in some runs of {}", inexact.join("; "))
        }
    );

    // --- The programs' own cost.
    let _ = writeln!(s, "### The programs' own cost per packet\n");
    let _ = writeln!(
        s,
        "The kernel's BPF run-time statistics (`BPF_ENABLE_STATS`; `run_time_ns` / `run_cnt` of the setup's \
         programs over a {:.0} s window opened {:.1} s after the generator started, read with `bpftool prog show \
         --json`), at {} kpps. This is what the program itself costs per packet, helpers included (for a \
         captured packet, writing its ring buffer record), without the rest of the path; the statistics add \
         two clock reads to every run, the same for every row. The live figures of one setup move by several ns \
         from run to run (the cache and the host), so each setup is measured right next to the bare pass program \
         of its hook, in {} rounds (each round runs the bare program and the setups of its hook back to back, in \
         reverse order every other round). **ns per run**: the median over rounds; **over bare**: the median of \
         the per-round differences with the bare program, ± half their interquartile range. The hand-written C \
         program (bench/c/programs.c, as in the isolated table below) and xcap with a filter that matches nothing \
         (`{FILTER_NONE}`) show what the filter alone costs on this path; they run with 1% matching traffic \
         only.\n",
        cfg.prog_window.as_secs_f64(),
        OWN_COST_WARMUP.as_secs_f64(),
        fixed_rate / 1000,
        cfg.prog_rounds
    );
    let _ = writeln!(
        s,
        "| setup | matching | program runs | ns per run | min-max | over bare |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|");
    for every in [100usize, 1] {
        for g in &groups {
            let names = std::iter::once(g.bare.0).chain(
                g.members
                    .iter()
                    .filter(|m| every == ONE_PCT || !m.only_at_1pct)
                    .map(|m| m.name),
            );
            for name in names {
                let Some((per, lo, hi, runs)) = own.ns_per_run(name, every) else {
                    if let Some(e) = own.error(name, every) {
                        let _ = writeln!(s, "| {name} | {} | {e} | | | |", pct(every));
                    }
                    continue;
                };
                let over = if name == g.bare.0 {
                    String::new()
                } else {
                    own.over_bare(name, g.bare.0, every)
                        .map_or(String::new(), |(d, q, _)| format!("{d:+.1} ±{q:.1}"))
                };
                let _ = writeln!(
                    s,
                    "| {name} | {} | {runs} | {per:.1} | {lo:.1}-{hi:.1} | {over} |",
                    pct(every)
                );
            }
        }
    }
    let _ = writeln!(s);

    // --- Against the targets.
    let _ = writeln!(s, "### Against the targets\n");
    let _ = writeln!(
        s,
        "Medians of the runs above, 1% matching unless said; \"noise\" is half the min-max range of each of the two \
         rows compared, added (for the BPF statistics rows: half the interquartile range of the paired \
         differences): a difference smaller than that is not resolved by this many runs.\n"
    );
    let _ = writeln!(s, "| target | rate | measured | noise | verdict |");
    let _ = writeln!(s, "|---|---|---|--:|---|");
    let get = |name: &'static str, every: usize, max_rate: bool| -> Option<&Vec<Run>> {
        results.get(&(name, every, max_rate))?.as_ref().ok()
    };
    let metrics: [(&str, Metric); 2] = [
        ("/proc/stat", Run::ns_per_packet),
        ("tasks", Run::task_ns_per_packet),
    ];
    let half = |(_, lo, hi): (f64, f64, f64)| (hi - lo) / 2.0;
    for max_rate in [true, false] {
        let rate_name = if max_rate {
            "max".to_string()
        } else {
            format!("{} kpps", fixed_rate / 1000)
        };
        // xcap --tc: at most a third of tcpdump's overhead.
        if let (Some(none), Some(td), Some(tc)) = (
            get("no capture", 100, max_rate),
            get("tcpdump", 100, max_rate),
            get("`xcap --tc`", 100, max_rate),
        ) {
            for (mname, f) in metrics {
                let (b, t, x) = (stats(none, f), stats(td, f), stats(tc, f));
                let (ot, ox) = (t.0 - b.0, x.0 - b.0);
                let _ = writeln!(
                    s,
                    "| `xcap --tc` adds at most 1/3 of tcpdump's overhead | {rate_name}, {mname} | {ox:+.0} ns vs tcpdump {ot:+.0} ns (1/3: {:.0}) | {:.0} | {} |",
                    ot / 3.0,
                    half(b) + half(x),
                    if ox <= ot / 3.0 { "met" } else { "not met" }
                );
            }
        }
        if let Some(tc) = get("`xcap --tc`", 100, max_rate) {
            let lost: i64 = tc
                .iter()
                .filter_map(|r| Some(r.matching_at_hook() as i64 - r.tool?.captured as i64))
                .sum();
            let dropped: u64 = tc.iter().filter_map(|r| Some(r.tool?.dropped)).sum();
            let _ = writeln!(
                s,
                "| `xcap --tc` loses no matching packet | {rate_name} | {lost} lost, {dropped} dropped in {} runs | | {} |",
                tc.len(),
                if lost == 0 && dropped == 0 { "met" } else { "not met" }
            );
        }
        for (x, bare) in [
            ("`xcap --xdp` native", "bare native-XDP pass program, frags"),
            (
                "`xcap --xdp` generic",
                "bare generic-XDP pass program, frags",
            ),
        ] {
            if let (Some(xr), Some(br)) = (get(x, 100, max_rate), get(bare, 100, max_rate)) {
                for (mname, f) in metrics {
                    let (a, b) = (stats(xr, f), stats(br, f));
                    let d = a.0 - b.0;
                    let noise = half(a) + half(b);
                    let _ = writeln!(
                        s,
                        "| {x} adds at most 10 ns over a bare XDP pass program (frags, as xcap's) | {rate_name}, {mname} | {d:+.0} ns ({:.0} vs {:.0}) | {noise:.0} | {}{} |",
                        a.0,
                        b.0,
                        if d <= 10.0 { "met" } else { "not met" },
                        if (d - 10.0).abs() < noise { " (within noise)" } else { "" }
                    );
                }
            }
        }
        for row in rows.iter().filter(|r| matches!(r.setup, Setup::Xcap(..))) {
            let Some(runs) = get(row.name, 1, max_rate) else {
                continue;
            };
            let reached: u64 = runs.iter().map(|r| r.whole.rx_packets).sum();
            let captured: u64 = runs.iter().filter_map(|r| Some(r.tool?.captured)).sum();
            let loss = (reached as f64 - captured as f64) * 100.0 / reached.max(1) as f64;
            let exact = runs.iter().filter(|r| r.exact() == Some(true)).count();
            let _ = writeln!(
                s,
                "| {}, 100% matching, snaplen {SNAPLEN}: losses < 0.1%, counted exactly | {rate_name} | {loss:.3}% lost; exact in {exact}/{} runs | | {} |",
                row.name,
                runs.len(),
                if loss < 0.1 && exact == runs.len() { "met" } else { "not met" }
            );
        }
    }
    for g in &groups {
        for m in g.members.iter().filter(|m| m.xcap_program) {
            let Some((d, q, pairs)) = own.over_bare(m.name, g.bare.0, ONE_PCT) else {
                continue;
            };
            let xdp = m.name.contains("--xdp");
            let verdict = if !xdp {
                "(no target; for reference)"
            } else if d <= 10.0 {
                "met"
            } else if d - q <= 10.0 {
                "not met (within noise)"
            } else {
                "not met"
            };
            let filter_alone = g
                .members
                .iter()
                .filter(|o| o.only_at_1pct)
                .filter_map(|o| {
                    let (d, q, _) = own.over_bare(o.name, g.bare.0, ONE_PCT)?;
                    Some(format!("{}: {d:+.1} ±{q:.1}", o.short))
                })
                .collect::<Vec<_>>();
            let _ = writeln!(
                s,
                "| {}: the program's own cost over {} (BPF statistics, {pairs} paired rounds{}) | {} kpps | {d:+.1} ns | {q:.1} | {verdict} |",
                m.name,
                g.bare.0,
                if filter_alone.is_empty() {
                    String::new()
                } else {
                    format!("; the filter alone, {}", filter_alone.join(", "))
                },
                fixed_rate / 1000
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "The issue's anchors (build machine, 1% matching, maximum rate) against this machine:\n"
    );
    let _ = writeln!(
        s,
        "| setup | issue's anchor ns/packet | here, max rate | here, {} kpps |",
        fixed_rate / 1000
    );
    let _ = writeln!(s, "|---|--:|--:|--:|");
    for (name, anchor) in [
        ("no capture", 1230),
        ("tcpdump", 1515),
        ("bare TC pass program", 1300),
        ("bare generic-XDP pass program", 1520),
        ("bare native-XDP pass program", 1750),
    ] {
        let f = |m: bool| {
            get(name, 100, m).map_or("–".to_string(), |r| {
                format!("{:.0}", stats(r, Run::ns_per_packet).0)
            })
        };
        let _ = writeln!(s, "| {name} | {anchor} | {} | {} |", f(true), f(false));
    }
    let _ = writeln!(s);

    // --- The programs' fixed cost in isolation.
    if let (None, Some(x)) = (&xcap_note, &cfg.xcap) {
        log("isolated fixed cost");
        let setup = crate::isolated::Setup {
            cap_ns: &n.cap,
            cap_if: CAP_IF,
            xcap: x,
            filter: FILTER,
            snaplen: SNAPLEN,
            c_dir: &cfg.c_dir,
            frame: &frame(10),
        };
        match crate::isolated::run(&setup, log) {
            Ok(t) => s += &t,
            Err(e) => {
                let _ = writeln!(s, "Fixed cost in isolation: not measured ({}).\n", cell(&e));
            }
        }
    }

    // --- Startup time.
    let _ = writeln!(s, "Startup: command start (spawn of `ip netns exec ... CMD`) to its \"listening on\" line, median of {} runs, no traffic.\n", cfg.startup_runs);
    let _ = writeln!(s, "| command | median ms | min ms | max ms |");
    let _ = writeln!(s, "|---|--:|--:|--:|");
    let mut cmds: Vec<(String, Option<Vec<String>>)> =
        vec![("tcpdump".into(), capture_cmd(&Setup::Tcpdump))];
    for extra in [&["--tc"][..], &["--xdp", "--xdp-mode", "native"][..]] {
        let name = format!("`xcap {}`", extra.join(" "));
        cmds.push((
            name,
            if xcap_note.is_none() {
                capture_cmd(&xcap(extra))
            } else {
                None
            },
        ));
    }
    for (name, cmd) in cmds {
        let Some(cmd) = cmd else {
            let _ = writeln!(
                s,
                "| {name} | {} | | |",
                xcap_note.clone().unwrap_or_default()
            );
            continue;
        };
        log(&format!("startup: {name}"));
        let mut times = Vec::new();
        let mut err = None;
        for _ in 0..cfg.startup_runs {
            match Tool::start(&n.cap, &cmd) {
                Ok(t) => {
                    times.push(t.startup);
                    t.stop()?;
                }
                Err(e) => {
                    err = Some(cell(&e));
                    break;
                }
            }
        }
        if let Some(e) = err {
            let _ = writeln!(s, "| {name} | {e} | | |");
        } else {
            let min = times.iter().min().unwrap().as_secs_f64() * 1e3;
            let max = times.iter().max().unwrap().as_secs_f64() * 1e3;
            let _ = writeln!(
                s,
                "| {name} | {:.1} | {min:.1} | {max:.1} |",
                median_ms(times)
            );
        }
    }
    drop(n);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_checksum_verifies() {
        let conf = trafgen_conf(1);
        let bytes: Vec<u8> = conf
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .split(',')
            .map(|b| u8::from_str_radix(b.trim().trim_start_matches("0x"), 16).unwrap())
            .collect();
        assert_eq!(bytes.len(), FRAME_LEN);
        // A header with its checksum in place sums to 0xffff.
        assert_eq!(ip_checksum(&bytes[14..34]), 0);
        assert_eq!(&bytes[36..38], &[0, 9]);
    }
}
