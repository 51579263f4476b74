//! A capture left running stays flat: for a few minutes (three by default;
//! `XCAP_LONG_RUN_SECS` sets it, 3600 for the hour) `xcap -i any` writes a
//! ring of rotated files (`-C 1 -W 3`) from a steady 2,000 frames a second
//! while a veth pair is created, used and deleted every ten seconds (the
//! containers that come and go). Each cycle, once the pair is gone, the
//! test samples xcap's resident memory and open files: the files must be
//! as many every time, the memory of the run's second half may not pass
//! the first half's peak by 2 MiB (the allocator settles in the first
//! minute or two, and moves by about a MiB after), and every frame sent
//! must be captured. The report line
//! gives the second half's slope (least squares).
//!
//! The namespaces are private and deleted when the test ends; the frames
//! are UDP to port 7777 sent through packet sockets from the peer
//! namespace. Needs root.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xcap_tests::netns::{exec, send_frames, spawn_in, Pair};
use xcap_tests::process::{run, Proc};
use xcap_tests::{eth_ipv4, report, xcap_bin};

const CYCLE: Duration = Duration::from_secs(10);

fn frames(n: usize) -> Vec<Vec<u8>> {
    let mut payload = vec![0u8; 158];
    payload[0] = 1;
    vec![eth_ipv4(17, [10, 9, 0, 1], [10, 9, 0, 2], 4000, 7777, &payload); n]
}

/// (resident KiB, open files) of process `pid`.
fn sample(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// The least-squares slope of `points` (x, y).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    cov / var
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

#[test]
fn a_capture_of_minutes_keeps_its_memory_and_open_files_flat() {
    let secs: u64 = std::env::var("XCAP_LONG_RUN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let pair = Pair::new("xcap-long");
    pair.link("lt0", "lr0");
    pair.up("lt0", "lr0");
    let ring = pair.path("ring");
    let mut cmd = exec(&pair.b, xcap_bin());
    cmd.args(["-i", "any", "-C", "1", "-W", "3", "-w"])
        .arg(&ring)
        .arg("udp port 7777");
    let mut xcap = Proc::start(cmd);
    xcap.wait_listening("xcap");

    // The steady traffic: 100 frames every 50 ms.
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let steady = {
        let (stop, sent) = (stop.clone(), sent.clone());
        spawn_in(&pair.a, move || {
            let batch = frames(100);
            while !stop.load(Ordering::SeqCst) {
                send_frames("lt0", &batch);
                sent.fetch_add(100, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut churned = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let cycle = Instant::now();
        ip(&[
            "link", "add", "cv0", "netns", &pair.b, "type", "veth", "peer", "name", "cp0", "netns",
            &pair.a,
        ]);
        ip(&["-n", &pair.b, "link", "set", "cv0", "up"]);
        ip(&["-n", &pair.a, "link", "set", "cp0", "up"]);
        xcap.wait_for("xcap", "listening on cv0");
        spawn_in(&pair.a, || send_frames("cp0", &frames(20)))
            .join()
            .unwrap();
        churned += 20;
        std::thread::sleep(Duration::from_millis(300));
        ip(&["-n", &pair.b, "link", "del", "cv0"]);
        // The consumer looks within a second.
        std::thread::sleep(Duration::from_millis(1500));
        samples.push((started.elapsed().as_secs_f64(), sample(xcap.pid())));
        std::thread::sleep(CYCLE.saturating_sub(cycle.elapsed()));
    }
    stop.store(true, Ordering::SeqCst);
    steady.join().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    xcap.signal(libc::SIGINT);
    let (code, lines) = xcap.finish("xcap");
    assert_eq!(code, 0, "{}", lines.join("\n"));

    let total = sent.load(Ordering::SeqCst) + churned;
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("{total} packets captured")),
        "sent {total}: {}",
        lines.join("\n")
    );
    let fds: Vec<usize> = samples.iter().map(|(_, (_, f))| *f).collect();
    assert!(
        fds.iter().all(|&f| f == fds[0]),
        "open files per cycle: {fds:?}"
    );
    let half = secs as f64 / 2.0;
    let late: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= half)
        .map(|(t, (rss, _))| (*t / 3600.0, *rss as f64))
        .collect();
    assert!(late.len() >= 3, "too short a run for a slope: {samples:?}");
    let per_hour = slope(&late);
    let peak = |second: bool| {
        samples
            .iter()
            .filter(|(t, _)| (*t >= half) == second)
            .map(|(_, (rss, _))| *rss)
            .max()
            .unwrap_or(0)
    };
    let (first_peak, second_peak) = (peak(false), peak(true));
    let rss: Vec<u64> = samples.iter().map(|(_, (r, _))| *r).collect();
    report(&format!(
        "long run: {secs} s, {total} frames captured, {} veth pairs came and went; \
         open files {} every cycle; RSS {} -> {} KiB (peaks {first_peak}, {second_peak}), \
         second half's slope {per_hour:.0} KiB/h",
        samples.len(),
        fds[0],
        rss.first().unwrap(),
        rss.last().unwrap(),
    ));
    assert!(
        second_peak < first_peak + 2048,
        "RSS grows in the second half: {rss:?}"
    );
}
