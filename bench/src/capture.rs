//! Section 2: capture overhead. A veth pair between two private network
//! namespaces (`xbg<pid>` sends with trafgen, `xbc<pid>` receives and
//! captures); 72-byte UDP frames at trafgen's maximum rate on one CPU;
//! total busy CPU time over all cores (/proc/stat) per packet sent, over a
//! fixed window after a warm-up.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Addresses are used only inside the two namespaces.
const GEN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x01];
const CAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x02];
const FILTER: &str = "udp port 9";
const SNAPLEN: &str = "96";

pub struct Config {
    pub window: Duration,
    pub warmup: Duration,
    pub xcap: Option<PathBuf>,
    pub startup_runs: usize,
    /// bench/c, for pass.c.
    pub c_dir: PathBuf,
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

/// The two namespaces; deleted on drop (which deletes the veth pair).
struct Netns {
    gen: String,
    cap: String,
}

impl Netns {
    fn new() -> Result<Netns> {
        let id = std::process::id();
        let n = Netns {
            gen: format!("xbg{id}"),
            cap: format!("xbc{id}"),
        };
        sh(&["ip", "netns", "add", &n.gen])?;
        sh(&["ip", "netns", "add", &n.cap])?;
        sh(&[
            "ip", "-n", &n.gen, "link", "add", "xbv0", "type", "veth", "peer", "name", "xbv1",
            "netns", &n.cap,
        ])?;
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        sh(&[
            "ip",
            "-n",
            &n.gen,
            "link",
            "set",
            "xbv0",
            "address",
            &mac(GEN_MAC),
            "up",
        ])?;
        sh(&[
            "ip",
            "-n",
            &n.cap,
            "link",
            "set",
            "xbv1",
            "address",
            &mac(CAP_MAC),
            "up",
        ])?;
        sh(&["ip", "-n", &n.cap, "link", "set", "lo", "up"])?;
        sh(&[
            "ip",
            "-n",
            &n.gen,
            "addr",
            "add",
            "10.99.0.1/24",
            "dev",
            "xbv0",
        ])?;
        sh(&[
            "ip",
            "-n",
            &n.cap,
            "addr",
            "add",
            "10.99.0.2/24",
            "dev",
            "xbv1",
        ])?;
        Ok(n)
    }

    fn tx_packets(&self) -> Result<u64> {
        Ok(sh(&[
            "ip",
            "netns",
            "exec",
            &self.gen,
            "cat",
            "/sys/class/net/xbv0/statistics/tx_packets",
        ])?
        .trim()
        .parse()?)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.gen]);
        let _ = sh(&["ip", "netns", "del", &self.cap]);
    }
}

/// Busy and total jiffies over all CPUs.
fn cpu_ticks() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/stat")?;
    let f: Vec<u64> = s
        .lines()
        .next()
        .context("empty /proc/stat")?
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    Ok(f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0))
}

/// utime + stime per process that is neither ours (descendants of this
/// process: trafgen, the capture tool) nor a kernel thread, to take other
/// work on the machine out of the /proc/stat figure.
fn other_ticks() -> std::collections::HashMap<u32, u64> {
    let me = std::process::id();
    let mut info = std::collections::HashMap::new();
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
            if f.len() < 13 {
                continue;
            }
            let ppid: u32 = f[1].parse().unwrap_or(0);
            let ticks = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
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

fn other_delta(
    a: &std::collections::HashMap<u32, u64>,
    b: &std::collections::HashMap<u32, u64>,
) -> u64 {
    b.iter()
        .map(|(pid, t)| t.saturating_sub(a.get(pid).copied().unwrap_or(0)))
        .sum()
}

fn ns_per_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    1e9 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// trafgen configuration: 72-byte Ethernet/IPv4/UDP frames to the capture
/// side's MAC and address, one in `every` to UDP port 9 (matching), the
/// rest to port 10.
fn trafgen_conf(every: usize) -> String {
    let mut s = String::new();
    for i in 0..every {
        let dport: u16 = if i == 0 { 9 } else { 10 };
        let mut f = Vec::new();
        f.extend_from_slice(&CAP_MAC);
        f.extend_from_slice(&GEN_MAC);
        f.extend_from_slice(&[0x08, 0x00]);
        let ip_len: u16 = 72 - 14;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 99, 0, 1, 10, 99, 0, 2]);
        f.extend_from_slice(&4000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&(ip_len - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.resize(72, 0x5a);
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

/// What to run on the capture side.
#[derive(Clone)]
enum Setup {
    None,
    BareTc,
    BareXdp(&'static str),
    Tcpdump,
    Xcap(Vec<String>),
}

struct Outcome {
    ns_per_packet: f64,
    /// Other processes' CPU, per packet, taken out of `ns_per_packet`.
    other_ns: f64,
    kpps: f64,
    /// captured, expected matching packets, "dropped by kernel" as reported.
    capture: Option<(u64, u64, u64)>,
}

fn interrupt(child: &mut Child) -> Result<String> {
    // SAFETY: signalling a child we started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    Ok(String::new())
}

/// Starts a capture command in the capture namespace and waits until it
/// says it is listening. Returns the child, the time that took, and a
/// receiver of the rest of its stderr.
fn start_capture(ns: &str, cmd: &[String]) -> Result<(Child, Duration, mpsc::Receiver<String>)> {
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
                    return Ok((child, t.elapsed(), rx));
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

/// Parses "N packets captured", "N packets dropped by kernel".
fn parse_stats(lines: &[String]) -> Option<(u64, u64)> {
    let num = |key: &str| {
        lines
            .iter()
            .find(|l| l.contains(key))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
    };
    Some((num("captured")?, num("dropped by kernel")?))
}

fn capture_cmd(setup: &Setup, iface: &str) -> Option<Vec<String>> {
    let base = |prog: &str| {
        vec![
            prog.to_string(),
            "-i".into(),
            iface.into(),
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
        Setup::Xcap(extra) => Some({
            let mut v = base(&extra[0]);
            v.extend(extra[1..].iter().cloned());
            v.push(FILTER.into());
            v
        }),
        _ => None,
    }
}

fn run_one(
    n: &Netns,
    cfg: &Config,
    setup: &Setup,
    every: usize,
    pass_obj: &Path,
) -> Result<Outcome> {
    // Attach bare programs.
    match setup {
        Setup::BareTc => {
            sh(&["tc", "-n", &n.cap, "qdisc", "add", "dev", "xbv1", "clsact"])?;
            sh(&[
                "tc",
                "-n",
                &n.cap,
                "filter",
                "add",
                "dev",
                "xbv1",
                "ingress",
                "bpf",
                "da",
                "obj",
                pass_obj.to_str().unwrap(),
                "sec",
                "tc",
            ])?;
        }
        Setup::BareXdp(mode) => {
            sh(&[
                "ip",
                "-n",
                &n.cap,
                "link",
                "set",
                "dev",
                "xbv1",
                mode,
                "obj",
                pass_obj.to_str().unwrap(),
                "sec",
                "xdp",
            ])?;
        }
        _ => {}
    }
    let mut cap = match capture_cmd(setup, "xbv1") {
        Some(cmd) => Some(start_capture(&n.cap, &cmd)?),
        None => None,
    };
    let conf = std::env::temp_dir().join(format!("xcap-bench-{}-{every}.cfg", std::process::id()));
    std::fs::write(&conf, trafgen_conf(every))?;
    let tx0 = n.tx_packets()?;
    let mut gen = Command::new("ip")
        .args(["netns", "exec", &n.gen, "trafgen", "-o", "xbv0", "-i"])
        .arg(&conf)
        .args(["--cpus", "1", "--no-sock-mem", "--no-cpu-stats"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting trafgen")?;
    std::thread::sleep(cfg.warmup);
    let o0 = other_ticks();
    let (c0, p0) = (cpu_ticks()?, n.tx_packets()?);
    let t0 = Instant::now();
    std::thread::sleep(cfg.window);
    let (c1, p1) = (cpu_ticks()?, n.tx_packets()?);
    let o1 = other_ticks();
    let other = other_delta(&o0, &o1);
    let dt = t0.elapsed();
    interrupt(&mut gen)?;
    std::thread::sleep(Duration::from_millis(300));
    let tx1 = n.tx_packets()?;
    let _ = std::fs::remove_file(&conf);
    let packets = (p1 - p0).max(1);
    let mut out = Outcome {
        ns_per_packet: (c1 - c0).saturating_sub(other) as f64 * ns_per_tick() / packets as f64,
        other_ns: other as f64 * ns_per_tick() / packets as f64,
        kpps: packets as f64 / dt.as_secs_f64() / 1e3,
        capture: None,
    };
    if let Some((mut child, _, rx)) = cap.take() {
        interrupt(&mut child)?;
        let lines: Vec<String> = rx.try_iter().collect();
        let sent = tx1 - tx0;
        let expected = sent / every as u64;
        if let Some((captured, dropped)) = parse_stats(&lines) {
            out.capture = Some((captured, expected, dropped));
        }
    }
    match setup {
        Setup::BareTc => {
            sh(&["tc", "-n", &n.cap, "qdisc", "del", "dev", "xbv1", "clsact"])?;
        }
        Setup::BareXdp(mode) => {
            sh(&[
                "ip", "-n", &n.cap, "link", "set", "dev", "xbv1", mode, "off",
            ])?;
        }
        _ => {}
    }
    Ok(out)
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// Runs section 2 and returns its markdown.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(s, "## 2. Capture overhead\n");
    let n = Netns::new()?;
    let pass_obj = std::env::temp_dir().join(format!("xcap-bench-pass-{}.o", std::process::id()));
    sh(&[
        "clang",
        "-O2",
        "-target",
        "bpf",
        "-c",
        cfg.c_dir.join("pass.c").to_str().unwrap(),
        "-o",
        pass_obj.to_str().unwrap(),
    ])?;
    // Is xcap's live capture there?
    let xcap_note = match &cfg.xcap {
        None => Some("not measured: xcap live capture unavailable (no binary)".to_string()),
        Some(x) => {
            let cmd: Vec<String> = vec![
                x.display().to_string(),
                "-i".into(),
                "xbv1".into(),
                "--xdp".into(),
                "-w".into(),
                "/dev/null".into(),
                FILTER.into(),
            ];
            match start_capture(&n.cap, &cmd) {
                Ok((mut c, _, _)) => {
                    interrupt(&mut c)?;
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
        Setup::Xcap(v)
    };
    let setups: Vec<(&str, Setup)> = vec![
        ("no capture", Setup::None),
        ("bare TC pass program", Setup::BareTc),
        (
            "bare generic-XDP pass program",
            Setup::BareXdp("xdpgeneric"),
        ),
        ("bare native-XDP pass program", Setup::BareXdp("xdpdrv")),
        ("tcpdump", Setup::Tcpdump),
        ("`xcap --tc`", xcap(&["--tc"])),
        (
            "`xcap --xdp` generic",
            xcap(&["--xdp", "--xdp-mode", "generic"]),
        ),
        (
            "`xcap --xdp` native",
            xcap(&["--xdp", "--xdp-mode", "native"]),
        ),
    ];
    let _ = writeln!(
        s,
        "veth pair between two private namespaces; trafgen (`-P 1`, one CPU, PACKET_MMAP) sends 72-byte \
         Ethernet/IPv4/UDP frames to the receiving side's MAC and address at its maximum rate; filter `{FILTER}`, \
         snaplen {SNAPLEN}, captures written to /dev/null (`-w`). Matching traffic: 1% (one frame in 100 to port 9, \
         the rest to port 10) or 100%. CPU: busy jiffies of all cores from /proc/stat (user, nice, system, irq, \
         softirq, steal) over a {:.0} s window after {:.0} s of warm-up, divided by the frames sent in the window \
         (xbv0 tx_packets). /proc/stat is machine-wide: the user and system time of processes other than the generator, the capture tool and kernel threads \
         (from /proc/PID/stat, processes alive at the window's end) is subtracted and shown in the last column; \
         other work still leaks in through interrupts and through processes that exit during the window. \
         \"matching sent\": matching frames the generator got into xbv0 (tx_packets over the whole run, from before \
         trafgen starts until after it has exited); \"captured\" and \"dropped\" are what the tool itself reports at exit.\n",
        cfg.window.as_secs_f64(),
        cfg.warmup.as_secs_f64()
    );
    let _ = writeln!(s, "| setup | matching | kpps sent | CPU ns/packet | over no capture | matching sent | captured | dropped (tool) | others' CPU ns/packet (excluded) |");
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for every in [100usize, 1] {
        let pct = if every == 1 { "100%" } else { "1%" };
        let mut none_ns = None;
        for (name, setup) in &setups {
            if matches!(setup, Setup::Xcap(_)) {
                if let Some(note) = &xcap_note {
                    let _ = writeln!(s, "| {name} | {pct} | | {note} | | | | | |");
                    continue;
                }
            }
            log(&format!("capture: {name}, {pct} matching"));
            match run_one(&n, cfg, setup, every, &pass_obj) {
                Ok(o) => {
                    if none_ns.is_none() {
                        none_ns = Some(o.ns_per_packet);
                    }
                    let over =
                        none_ns.map_or(String::new(), |b| format!("{:+.0}", o.ns_per_packet - b));
                    let (c, l, d) = match o.capture {
                        Some((c, e, d)) => (c.to_string(), e.to_string(), d.to_string()),
                        None if matches!(setup, Setup::Tcpdump | Setup::Xcap(_)) => {
                            ("?".into(), "?".into(), "?".into())
                        }
                        None => ("".into(), "".into(), "".into()),
                    };
                    let _ = writeln!(
                        s,
                        "| {name} | {pct} | {:.0} | {:.0} | {over} | {l} | {c} | {d} | {:.0} |",
                        o.kpps, o.ns_per_packet, o.other_ns
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "| {name} | {pct} | | failed: {} | | | | | |",
                        format!("{e:#}").replace('|', "/")
                    );
                }
            }
        }
    }
    // Startup time.
    let _ = writeln!(s, "\nStartup: command start (spawn of `ip netns exec ... CMD`) to its \"listening on\" line, median of {} runs, no traffic.\n", cfg.startup_runs);
    let _ = writeln!(s, "| command | median ms | min ms | max ms |");
    let _ = writeln!(s, "|---|--:|--:|--:|");
    let mut cmds: Vec<(String, Option<Vec<String>>)> =
        vec![("tcpdump".into(), capture_cmd(&Setup::Tcpdump, "xbv1"))];
    for extra in [&["--tc"][..], &["--xdp", "--xdp-mode", "native"][..]] {
        let name = format!("`xcap {}`", extra.join(" "));
        cmds.push((
            name,
            if xcap_note.is_none() {
                capture_cmd(&xcap(extra), "xbv1")
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
            match start_capture(&n.cap, &cmd) {
                Ok((mut c, t, _)) => {
                    times.push(t);
                    interrupt(&mut c)?;
                }
                Err(e) => {
                    err = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        if let Some(e) = err {
            let _ = writeln!(s, "| {name} | failed: {} | | |", e.replace('|', "/"));
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
    let _ = std::fs::remove_file(&pass_obj);
    drop(n);
    Ok(s)
}
