//! `-w` rotation end to end, against tcpdump: xcap and tcpdump capture the
//! same real traffic on the same interface with the same rotation flags
//! (`-C`, `-G`, `-W`, `-z`), each into a folder of its own, and must leave
//! files of the same names holding the same packets; every packet sent is
//! in exactly one of xcap's files, and tshark reads each file.
//!
//! The traffic: UDP frames of 1000 bytes to port 7777, each numbered in its
//! first payload bytes, sent through a packet socket on one end of a veth
//! pair between two private namespaces (deleted when the test ends) and
//! captured on the other end (TC ingress; tcpdump's `-Q in`). With the same
//! pcap record sizes (16 + 1000 bytes), `-C` splits both captures at the
//! same packets; for `-G 1`, frames go out in bursts in the middle of a
//! second, so that both place each burst in the same second's file.
//!
//! Needs root, tcpdump (run with `-Z root`: Debian's drops to the user
//! `tcpdump`, who cannot write the test's folders) and tshark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xcap_tests::netns::{exec, spawn_in, Pair};
use xcap_tests::process::{run, Proc};
use xcap_tests::{eth_ipv4, tcpdump_path, xcap_bin, TempDir};

const TX_IF: &str = "rt0";
const RX_IF: &str = "rr0";
const FILTER: &str = "udp port 7777";
const FRAME_LEN: usize = 1000;

/// Two namespaces joined by a veth pair, up.
fn net() -> Pair {
    let pair = Pair::new("xcap-rot");
    pair.link(TX_IF, RX_IF);
    pair.up(TX_IF, RX_IF);
    pair
}

/// Frame `seq`: UDP to port 7777, its number in the first payload bytes.
fn frame(seq: u32) -> Vec<u8> {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.resize(FRAME_LEN - 42, 0);
    eth_ipv4(17, [10, 9, 0, 1], [10, 9, 0, 2], 4000, 7777, &payload)
}

/// Sends frames `seqs` from the sending side, a hundred at a time with a
/// pause (neither capture's buffer fills).
fn send(pair: &Pair, seqs: std::ops::Range<u32>) {
    let frames: Vec<Vec<u8>> = seqs.map(frame).collect();
    spawn_in(&pair.a, move || {
        for chunk in frames.chunks(100) {
            xcap_tests::netns::send_frames(TX_IF, chunk);
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .join()
    .unwrap();
}

/// A capture into a folder of its own: xcap or tcpdump.
struct Capture {
    what: &'static str,
    dir: TempDir,
    proc: Proc,
}

impl Capture {
    /// Starts `program` on the receiving side with `args`, `-w` naming
    /// `name` in its folder, and waits until it listens.
    fn start(pair: &Pair, what: &'static str, args: &[&str], name: &str) -> Capture {
        let dir = TempDir::new(&format!("xcap-rot-{what}"));
        let mut cmd = match what {
            "xcap" => exec(&pair.b, xcap_bin()),
            _ => {
                let mut c = exec(&pair.b, tcpdump_path());
                c.args(["-Z", "root", "-Q", "in"]);
                c
            }
        };
        cmd.args(["-i", RX_IF]).args(args).arg("-w");
        cmd.arg(dir.path(name)).arg(FILTER);
        let mut proc = Proc::start(cmd);
        proc.wait_listening(what);
        Capture { what, dir, proc }
    }

    /// Stopped with SIGINT (unless it stopped by itself); its stderr.
    fn stop(self) -> (TempDir, Vec<String>) {
        self.proc.signal(libc::SIGINT);
        self.finish()
    }

    /// Waited for; its stderr. It must succeed.
    fn finish(self) -> (TempDir, Vec<String>) {
        let (code, lines) = self.proc.finish(self.what);
        assert_eq!(code, 0, "{}: {}", self.what, lines.join("\n"));
        (self.dir, lines)
    }
}

/// The capture files in `dir` (other than `-z`'s log), by name: the
/// numbers of the frames each holds, in order. Each file is read by
/// libpcap and by tshark, whose count must agree.
fn files_in(dir: &TempDir) -> BTreeMap<String, Vec<u32>> {
    let mut files = BTreeMap::new();
    let root = dir.path("");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".log") {
            continue;
        }
        let seqs = frames_in(&path);
        assert_eq!(tshark_count(&path), seqs.len(), "tshark on {name}");
        files.insert(name, seqs);
    }
    files
}

/// The frame numbers in a pcap or pcapng file, as libpcap reads it.
fn frames_in(path: &Path) -> Vec<u32> {
    let mut cap = pcap::Capture::from_file(path)
        .unwrap_or_else(|e| panic!("libpcap can't read {}: {e}", path.display()));
    let mut seqs = Vec::new();
    loop {
        match cap.next_packet() {
            Ok(p) => {
                assert_eq!(p.data.len(), FRAME_LEN, "{}", path.display());
                seqs.push(u32::from_be_bytes(p.data[42..46].try_into().unwrap()));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    seqs
}

/// How many packets tshark reads in `path` (it fails on a damaged file).
fn tshark_count(path: &Path) -> usize {
    let out = run(Command::new("tshark").args(["-n", "-r"]).arg(path).args([
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Every frame of `sent` in exactly one of `files`.
fn assert_each_frame_once(files: &BTreeMap<String, Vec<u32>>, sent: std::ops::Range<u32>) {
    let mut all: Vec<u32> = files.values().flatten().copied().collect();
    all.sort_unstable();
    let want: Vec<u32> = sent.collect();
    assert_eq!(all, want, "frames in the files: {:?}", sizes(files));
}

fn sizes(files: &BTreeMap<String, Vec<u32>>) -> Vec<(&str, usize)> {
    files.iter().map(|(n, s)| (n.as_str(), s.len())).collect()
}

/// A `-z` command that appends the name it is given to `log`, which
/// anyone may write (xcap's commands run as the user it became).
fn logging_script(dir: &TempDir, log: &Path) -> PathBuf {
    std::fs::write(log, "").unwrap();
    run(Command::new("chmod").arg("666").arg(log));
    let name = format!("{}.sh", log.file_stem().unwrap().to_str().unwrap());
    let script = dir.file(
        &name,
        format!("#!/bin/sh\nbasename \"$1\" >> {}\n", log.display()).as_bytes(),
    );
    run(Command::new("chmod").arg("755").arg(&script));
    script
}

/// The lines of a `-z` log once it has `want` of them (tcpdump does not
/// wait for its commands).
fn log_lines(log: &Path, want: usize) -> Vec<String> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= want {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{}: fewer than {want} lines", log.display());
}

/// With `args`, xcap and tcpdump capture `sent` and leave the same files
/// holding the same frames; every frame is in one of xcap's.
fn both_write_the_same_files(
    pair: &Pair,
    args: &[&str],
    name: &str,
    sent: std::ops::Range<u32>,
) -> BTreeMap<String, Vec<u32>> {
    let xcap = Capture::start(pair, "xcap", args, name);
    let tcpdump = Capture::start(pair, "tcpdump", args, name);
    send(pair, sent.clone());
    // xcap hands a file's packets over within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let (xcap_dir, _) = xcap.stop();
    let (tcpdump_dir, _) = tcpdump.stop();
    let (ours, theirs) = (files_in(&xcap_dir), files_in(&tcpdump_dir));
    assert_eq!(sizes(&ours), sizes(&theirs), "xcap's files, then tcpdump's");
    assert_eq!(ours, theirs, "the frames in each file");
    ours
}

#[test]
fn size_rotation_writes_the_files_tcpdump_writes() {
    let pair = net();
    // 985 records of 1016 bytes pass 1,000,000 bytes with the header.
    let files = both_write_the_same_files(&pair, &["-C", "1"], "out.pcap", 0..3000);
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(names, ["out.pcap", "out.pcap1", "out.pcap2", "out.pcap3"]);
    assert_each_frame_once(&files, 0..3000);
    assert_eq!(files["out.pcap"].len(), 985);
}

#[test]
fn size_rotation_in_pcapng_splits_complete_files_with_every_frame_once() {
    let pair = net();
    let xcap = Capture::start(&pair, "xcap", &["-C", "1"], "out.pcapng");
    send(&pair, 0..3000);
    std::thread::sleep(Duration::from_millis(1500));
    let (dir, _) = xcap.stop();
    let files = files_in(&dir);
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(
        names,
        ["out.pcapng", "out.pcapng1", "out.pcapng2", "out.pcapng3"]
    );
    assert_each_frame_once(&files, 0..3000);
}

#[test]
fn a_ring_of_files_wraps_and_post_rotate_runs_on_each_closed_file_as_tcpdumps() {
    let pair = net();
    let logs = TempDir::new("xcap-rot-z");
    let (ours, theirs) = (logs.path("xcap.log"), logs.path("tcpdump.log"));
    let (xcap_z, tcpdump_z) = (logging_script(&logs, &ours), logging_script(&logs, &theirs));
    // Six files' worth in a ring of three: the last three remain.
    let sent = 0..5000;
    let xcap = Capture::start(
        &pair,
        "xcap",
        &["-C", "1", "-W", "3", "-z", xcap_z.to_str().unwrap()],
        "ring",
    );
    let tcpdump = Capture::start(
        &pair,
        "tcpdump",
        &["-C", "1", "-W", "3", "-z", tcpdump_z.to_str().unwrap()],
        "ring",
    );
    send(&pair, sent.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let (xcap_dir, _) = xcap.stop();
    let (tcpdump_dir, _) = tcpdump.stop();
    let (files, their_files) = (files_in(&xcap_dir), files_in(&tcpdump_dir));
    assert_eq!(
        files, their_files,
        "the ring's files, xcap's then tcpdump's"
    );
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(names, ["ring0", "ring1", "ring2"]);
    // Files 3, 4 and 5 (985 frames each) overwrote files 0, 1 and 2.
    assert_eq!(files["ring0"].first(), Some(&(3 * 985)));
    assert_eq!(files["ring2"].last(), Some(&4999));
    // The commands run side by side: their lines may come in any order.
    let closed = ["ring0", "ring0", "ring1", "ring1", "ring2"];
    for (log, what) in [(&ours, "xcap's -z"), (&theirs, "tcpdump's -z")] {
        let mut lines = log_lines(log, 5);
        lines.sort();
        assert_eq!(lines, closed, "{what}");
    }
}

/// Sleeps until `fraction` of the way through the next second of the wall
/// clock; that second.
fn until_second_fraction(fraction: f64) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let second = now.as_secs() + 1;
    let at = Duration::from_secs(second) + Duration::from_secs_f64(fraction);
    std::thread::sleep(at.saturating_sub(now));
    second
}

/// Bursts of `per_burst` frames, one at four tenths into each of `bursts`
/// seconds; the seconds.
fn bursts(pair: &Pair, bursts: u32, per_burst: u32) -> Vec<u64> {
    let mut seconds = Vec::new();
    for b in 0..bursts {
        seconds.push(until_second_fraction(0.4));
        send(pair, b * per_burst..(b + 1) * per_burst);
    }
    seconds
}

/// The files that hold frames.
fn with_frames(files: BTreeMap<String, Vec<u32>>) -> BTreeMap<String, Vec<u32>> {
    files.into_iter().filter(|(_, s)| !s.is_empty()).collect()
}

#[test]
fn time_rotation_names_files_by_the_second_as_tcpdump_with_every_frame_once() {
    let pair = net();
    // tcpdump hands packets over at once, so that it sees each burst in
    // its second; xcap goes by the packets' time stamps.
    let args = ["-G", "1"];
    let xcap = Capture::start(&pair, "xcap", &args, "t-%s.pcap");
    let tcpdump = Capture::start(
        &pair,
        "tcpdump",
        &["-G", "1", "--immediate-mode"],
        "t-%s.pcap",
    );
    let seconds = bursts(&pair, 4, 10);
    std::thread::sleep(Duration::from_millis(1500));
    let (xcap_dir, _) = xcap.stop();
    let (tcpdump_dir, _) = tcpdump.stop();
    let files = with_frames(files_in(&xcap_dir));
    assert_eq!(
        files,
        with_frames(files_in(&tcpdump_dir)),
        "xcap's, then tcpdump's"
    );
    let want: Vec<String> = seconds.iter().map(|s| format!("t-{s}.pcap")).collect();
    let names: Vec<String> = files.keys().cloned().collect();
    assert_eq!(names, want);
    assert_each_frame_once(&files, 0..40);
}

#[test]
fn time_rotation_windows_are_aligned_to_the_clock() {
    let pair = net();
    let xcap = Capture::start(&pair, "xcap", &["-G", "2"], "t-%s.pcap");
    let seconds = bursts(&pair, 5, 3);
    std::thread::sleep(Duration::from_millis(1500));
    let (dir, _) = xcap.stop();
    let files = files_in(&dir);
    // The first file is named by xcap's start; every other by the even
    // second its window starts at. Each holds the frames of its window.
    for (i, (name, seqs)) in files.iter().enumerate() {
        let second: u64 = name[2..name.len() - 5].parse().unwrap();
        if i > 0 {
            assert_eq!(second % 2, 0, "{name}: {:?}", sizes(&files));
        }
        let window = second - second % 2;
        for s in seqs {
            let sent_at = seconds[(s / 3) as usize];
            assert!(
                (window..window + 2).contains(&sent_at),
                "{name} has frame {s}"
            );
        }
    }
    assert_each_frame_once(&files, 0..15);
}

#[test]
fn time_rotation_with_a_count_stops_after_that_many_files_as_tcpdump() {
    let pair = net();
    let xcap = Capture::start(&pair, "xcap", &["-G", "1", "-W", "2"], "t-%s.pcap");
    let tcpdump = Capture::start(
        &pair,
        "tcpdump",
        &["-G", "1", "-W", "2", "--immediate-mode"],
        "t-%s.pcap",
    );
    // The first burst starts the second file, the next closes it: both
    // stop.
    bursts(&pair, 2, 5);
    let (xcap_dir, xcap_err) = xcap.finish();
    let (tcpdump_dir, tcpdump_err) = tcpdump.finish();
    for err in [&xcap_err, &tcpdump_err] {
        assert!(
            err.iter().any(|l| l == "Maximum file limit reached: 2"),
            "{err:?}"
        );
    }
    let (ours, theirs) = (files_in(&xcap_dir), files_in(&tcpdump_dir));
    assert_eq!(ours.len(), 2, "{:?}", sizes(&ours));
    assert_eq!(with_frames(ours), with_frames(theirs));
}
