//! CPU accounting over a measurement window: /proc/stat per core, the
//! run time of our own tasks, and the CPU time of every other process (the
//! gate that repeats a disturbed run).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Per CPU: busy jiffies (user, nice, system, irq, softirq; guest time is
/// already inside user) and all jiffies (busy + idle + iowait + steal).
/// Steal is time this VM's CPU was runnable but the host ran something
/// else: not CPU this machine spent, and it varies with the host's load, so
/// it is kept out of "busy" and reported on its own.
pub(super) struct CpuSample {
    pub(super) busy: Vec<u64>,
    pub(super) all: Vec<u64>,
    pub(super) steal: u64,
}

pub(super) fn cpu_sample() -> Result<CpuSample> {
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

pub(super) fn ns_per_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    1e9 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// One line of /proc/PID/stat, cut after the command name (which may hold
/// spaces and parentheses).
struct ProcStat {
    pid: u32,
    /// `PID (comm)` but the last parenthesis.
    head: String,
    /// The fields after the command: state, parent, ...
    fields: String,
}

/// Every process's /proc/PID/stat that could be read.
fn processes() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, fields) = st.rsplit_once(')')?;
            Some(ProcStat {
                pid,
                head: head.to_owned(),
                fields: fields.to_owned(),
            })
        })
        .collect()
}

/// utime + stime + cutime + cstime of every process that is neither ours
/// (this process and its descendants: trafgen, the capture tool) nor a
/// kernel thread. Children reaped during a window show up in their parent's
/// cutime/cstime, so short-lived compilers and shells are seen too.
pub(super) fn other_ticks() -> HashMap<u32, u64> {
    let me = std::process::id();
    let mut info = HashMap::new();
    for p in processes() {
        let f: Vec<&str> = p.fields.split_whitespace().collect();
        if f.len() < 15 {
            continue;
        }
        let ppid: u32 = f[1].parse().unwrap_or(0);
        let ticks: u64 = f[11..15]
            .iter()
            .map(|x| x.parse::<u64>().unwrap_or(0))
            .sum();
        info.insert(p.pid, (ppid, ticks));
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
pub(super) fn our_task_ns() -> u64 {
    let me = std::process::id();
    let mut parent = HashMap::new();
    let mut softirqd = Vec::new();
    for p in processes() {
        if p.head.contains("(ksoftirqd/") {
            softirqd.push(p.pid);
        }
        let ppid: u32 = p
            .fields
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        parent.insert(p.pid, ppid);
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
pub(super) fn other_delta(a: &HashMap<u32, u64>, b: &HashMap<u32, u64>) -> u64 {
    b.iter()
        .map(|(pid, t)| t.saturating_sub(a.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// Waits (at most `max`) until the machine is quiet: less than 5% of all
/// CPU time busy over half a second. Returns how long it waited.
pub(super) fn wait_quiet(max: Duration) -> Duration {
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
