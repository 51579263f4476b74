//! The hour: `xcap -i any` with a ring of rotated files (`-C 10 -W 3`)
//! capturing a steady rate for a long time (an hour by default), sampled
//! every ten seconds. A long capture must stay flat: its resident memory,
//! open files and threads the same at the end as after the first minutes,
//! every frame sent captured, none lost in the ring buffer.
//!
//! `run` takes the steps in order: the namespaces, xcap listening, the
//! frames at the fixed rate (from a packet socket: trafgen's `-b` catches
//! up after a busy spell with bursts far above the rate), the samples
//! (with a veth pair created in the capture namespace and deleted again
//! once a minute, the containers that come and go), then the final counts
//! and the report. Each sample reads xcap's `/proc/PID` (VmRSS, threads,
//! open files, CPU time), its `XCAP_COUNTERS` maps (found through the map
//! ids in `/proc/PID/fdinfo`, read with bpftool), the receiving veth's
//! rx_packets and the bytes in the ring of files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::netns::{Netns, CAP_IF};
use super::shell::sh;
use super::tool::Tool;
use super::traffic::{Paced, FRAME_LEN};
use crate::stats::slope;

/// What `xcap-bench --long-run` was asked for.
pub struct LongRun {
    pub xcap: PathBuf,
    pub duration: Duration,
    /// Frames per second, every one matching the filter.
    pub rate: u64,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A veth pair comes and goes every this many samples.
const CHURN_EVERY: usize = 6;
const FILTER: &str = "udp port 9";
const RING_FILE_MB: &str = "10";
const RING_FILES: &str = "3";

/// One look at the running capture.
#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    /// User and system CPU time, in clock ticks.
    cpu_ticks: u64,
    /// The sums over xcap's counter maps (matched, output errors).
    matched: u64,
    ring_full: u64,
    /// Frames the receiving veth processed.
    rx_packets: u64,
    /// Bytes in the ring of files.
    file_bytes: u64,
}

/// Runs the long capture and returns its markdown.
pub fn run(cfg: &LongRun, log: &mut dyn FnMut(&str)) -> Result<String> {
    let mut n = Netns::new()?;
    let dir = std::env::temp_dir().join(format!("xcap-bench-long-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = measure(cfg, &mut n, &dir, log);
    let _ = std::fs::remove_dir_all(&dir);
    let (samples, end) = r?;
    Ok(report(cfg, &samples, &end))
}

/// What the run ended with.
struct End {
    sent: Option<u64>,
    captured: u64,
    received: u64,
    dropped: u64,
    pairs: usize,
    ring_bytes: u64,
}

fn measure(
    cfg: &LongRun,
    n: &mut Netns,
    dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(Vec<Sample>, End)> {
    let ring = dir.join("ring");
    let cmd: Vec<String> = [
        cfg.xcap.to_str().context("xcap path")?,
        "-i",
        "any",
        "-s",
        "96",
        "-C",
        RING_FILE_MB,
        "-W",
        RING_FILES,
        "-w",
        ring.to_str().context("ring path")?,
        FILTER,
    ]
    .map(String::from)
    .to_vec();
    let tool = Tool::start(&n.cap, &cmd)?;
    let pid = tool.pid();
    let ring_bytes = ring_buffer_bytes(pid)?;
    let gen = Paced::start(&n.gen, cfg.rate)?;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut pairs = 0;
    while started.elapsed() < cfg.duration {
        let next = SAMPLE_EVERY * (samples.len() as u32 + 1);
        if samples.len() % CHURN_EVERY == 0 {
            churn(&n.cap, pairs)?;
            pairs += 1;
        }
        std::thread::sleep(next.saturating_sub(started.elapsed()));
        let s = sample(pid, n, dir, started.elapsed())?;
        if samples.len() % 30 == 0 {
            log(&format!(
                "long run: {:.0} s, RSS {} KiB, {} files, {} threads, {} captured",
                s.secs, s.rss_kib, s.fds, s.threads, s.matched
            ));
        }
        samples.push(s);
    }
    let sent = Some(gen.stop()?);
    std::thread::sleep(Duration::from_secs(2));
    let stats = tool.stop()?.context("xcap printed no counter lines")?;
    Ok((
        samples,
        End {
            sent,
            captured: stats.captured,
            received: stats.received,
            dropped: stats.dropped,
            pairs,
            ring_bytes,
        },
    ))
}

/// A veth pair in the capture namespace, up for five seconds, then
/// deleted in the background: xcap attaches to both ends and lets them go.
fn churn(ns: &str, i: usize) -> Result<()> {
    let (a, b) = (format!("lr{i}a"), format!("lr{i}b"));
    sh(&[
        "ip", "-n", ns, "link", "add", &a, "type", "veth", "peer", "name", &b,
    ])?;
    sh(&["ip", "-n", ns, "link", "set", &a, "up"])?;
    sh(&["ip", "-n", ns, "link", "set", &b, "up"])?;
    let ns = ns.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        let _ = sh(&["ip", "-n", &ns, "link", "del", &a]);
    });
    Ok(())
}

fn sample(pid: u32, n: &mut Netns, dir: &Path, at: Duration) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis: utime is the 12th.
    let after: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> u64 { after.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let counters = counters(pid)?;
    let file_bytes = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ring"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(Sample {
        secs: at.as_secs_f64(),
        rss_kib: field("VmRSS:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        threads: field("Threads:")?,
        cpu_ticks: ticks(11) + ticks(12),
        matched: counters[capture_abi::COUNTER_MATCHED as usize],
        ring_full: counters[capture_abi::COUNTER_OUTPUT_ERRORS as usize],
        rx_packets: n.cap_view.dev(CAP_IF)?[0],
        file_bytes,
    })
}

/// The ids of the BPF maps process `pid` holds, with their type.
fn maps_of(pid: u32) -> Result<Vec<(u32, u32, u64)>> {
    let mut maps = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(info) = std::fs::read_to_string(e?.path()) else {
            continue;
        };
        let num = |key: &str| -> Option<u64> {
            info.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
        };
        if let (Some(id), Some(kind), Some(entries)) =
            (num("map_id:"), num("map_type:"), num("max_entries:"))
        {
            maps.push((id as u32, kind as u32, entries));
        }
    }
    Ok(maps)
}

/// Bytes of xcap's BPF ring buffers (BPF_MAP_TYPE_RINGBUF is 27).
fn ring_buffer_bytes(pid: u32) -> Result<u64> {
    Ok(maps_of(pid)?
        .iter()
        .filter(|m| m.1 == 27)
        .map(|m| m.2)
        .sum())
}

/// xcap's counters, summed over CPUs and over its counter maps.
fn counters(pid: u32) -> Result<[u64; capture_abi::COUNTERS_LEN as usize]> {
    let mut sum = [0u64; capture_abi::COUNTERS_LEN as usize];
    // BPF_MAP_TYPE_PERCPU_ARRAY (6) of COUNTERS_LEN entries.
    for (id, _, _) in maps_of(pid)?
        .into_iter()
        .filter(|m| m.1 == 6 && m.2 == u64::from(capture_abi::COUNTERS_LEN))
    {
        let show = sh(&["bpftool", "-j", "map", "show", "id", &id.to_string()])?;
        let show: serde_json::Value = serde_json::from_str(&show)?;
        if show["name"] != capture_abi::COUNTERS_MAP {
            continue;
        }
        let dump = sh(&["bpftool", "-j", "map", "dump", "id", &id.to_string()])?;
        for entry in serde_json::from_str::<serde_json::Value>(&dump)?
            .as_array()
            .context("bpftool map dump")?
        {
            let key = le_bytes(&entry["key"])? as usize;
            for cpu in entry["values"].as_array().context("per-CPU values")? {
                if let Some(slot) = sum.get_mut(key) {
                    *slot += le_bytes(&cpu["value"])?;
                }
            }
        }
    }
    Ok(sum)
}

/// bpftool's raw bytes (`["0x01", "0x00", ...]`) as a little-endian number.
fn le_bytes(v: &serde_json::Value) -> Result<u64> {
    let Some(bytes) = v.as_array() else {
        bail!("not a byte array: {v}");
    };
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(8) {
        let b = b.as_str().context("byte")?.trim_start_matches("0x");
        n |= u64::from_str_radix(b, 16)? << (8 * i);
    }
    Ok(n)
}

/// The report: method, a row every five minutes, the slopes and the
/// counts.
fn report(cfg: &LongRun, samples: &[Sample], end: &End) -> String {
    let mut s = String::new();
    let secs = cfg.duration.as_secs();
    let _ = writeln!(s, "## A long capture ({secs} s at {} frames/s)\n", cfg.rate);
    let _ = writeln!(
        s,
        "`xcap -i any -s 96 -C {RING_FILE_MB} -W {RING_FILES} -w ring '{FILTER}'` in the receiving \
         namespace; a packet socket in the sending namespace sends {FRAME_LEN}-byte UDP \
         frames, every one matching, {} a second in batches every 100 ms (a batch missed \
         while the machine is busy is not made up); a veth pair is created in the capture namespace and deleted five seconds \
         later once a minute. Sampled every {} s: xcap's VmRSS, threads and open files \
         (/proc/PID), its CPU time, its XCAP_COUNTERS maps (bpftool), the receiving veth's \
         rx_packets, the bytes in the ring of files.\n",
        cfg.rate,
        SAMPLE_EVERY.as_secs()
    );
    let _ = writeln!(
        s,
        "| time s | RSS KiB | open files | threads | CPU s | matched | ring full | veth rx | ring files MB |"
    );
    let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let tick = 100.0; // USER_HZ
    let every = (300 / SAMPLE_EVERY.as_secs() as usize).max(1);
    for (i, x) in samples.iter().enumerate() {
        if i % every != every - 1 && i != samples.len() - 1 {
            continue;
        }
        let _ = writeln!(
            s,
            "| {:.0} | {} | {} | {} | {:.2} | {} | {} | {} | {:.1} |",
            x.secs,
            x.rss_kib,
            x.fds,
            x.threads,
            x.cpu_ticks as f64 / tick,
            x.matched,
            x.ring_full,
            x.rx_packets,
            x.file_bytes as f64 / 1e6
        );
    }
    let hours = |x: &Sample| x.secs / 3600.0;
    let per_hour = |from: f64, f: &dyn Fn(&Sample) -> f64| {
        let pts: Vec<(f64, f64)> = samples
            .iter()
            .filter(|x| x.secs >= from)
            .map(|x| (hours(x), f(x)))
            .collect();
        if pts.len() < 3 {
            f64::NAN
        } else {
            slope(&pts)
        }
    };
    let rss = |x: &Sample| x.rss_kib as f64;
    let fds: Vec<usize> = samples.iter().map(|x| x.fds).collect();
    let threads: Vec<u64> = samples.iter().map(|x| x.threads).collect();
    let (first, last) = (samples.first(), samples.last());
    let cpu_per_frame = match (first, last) {
        (Some(a), Some(b)) if b.matched > a.matched => {
            (b.cpu_ticks - a.cpu_ticks) as f64 / tick * 1e9 / (b.matched - a.matched) as f64
        }
        _ => f64::NAN,
    };
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- RSS slope (least squares): {:.0} KiB/h over the whole run, {:.0} KiB/h after the \
         first ten minutes, {:.0} KiB/h over the second half; min {} KiB, max {} KiB.",
        per_hour(0.0, &rss),
        per_hour(600.0, &rss),
        per_hour(secs as f64 / 2.0, &rss),
        samples.iter().map(|x| x.rss_kib).min().unwrap_or(0),
        samples.iter().map(|x| x.rss_kib).max().unwrap_or(0),
    );
    let _ = writeln!(
        s,
        "- Open files: {}..{} in {} samples; threads: {}..{}; {} veth pairs came and went.",
        fds.iter().min().unwrap_or(&0),
        fds.iter().max().unwrap_or(&0),
        samples.len(),
        threads.iter().min().unwrap_or(&0),
        threads.iter().max().unwrap_or(&0),
        end.pairs
    );
    let _ = writeln!(
        s,
        "- Frames: sent {}, xcap: {} packets captured, {} received by filter, {} \
         dropped by kernel; ring-full errors in the kernel: {}; BPF ring buffers: {} MiB.",
        end.sent.map_or("?".to_string(), |n| n.to_string()),
        end.captured,
        end.received,
        end.dropped,
        last.map_or(0, |x| x.ring_full),
        end.ring_bytes >> 20
    );
    let _ = writeln!(
        s,
        "- xcap's CPU time: {cpu_per_frame:.0} ns per captured frame (user and system, \
         reader and writer threads, rotation included)."
    );
    s
}
