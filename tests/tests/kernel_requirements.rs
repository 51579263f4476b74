//! The oldest kernel xcap runs on (Linux 6.1): older kernels are refused
//! in one line that names what they lack, with nothing left attached;
//! kernels from 6.1 on are not refused. The kernel matrix
//! (scripts/kernel-matrix.sh) runs this in Debian 11's 5.10 as well as in
//! 6.1, 6.12 and the host's kernel, so both branches run on every CI run.

use std::process::{Command, Output};

use xcap_tests::process::output;
use xcap_tests::programs::{loaded_programs, programs_left};
use xcap_tests::{report, xcap_bin};

/// (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// xcap with `args`, in a network namespace of its own whose loopback is
/// up, pinged until xcap ends so that a capture that started (slowly, in
/// an emulated guest) has a packet; and how many xcap programs it left
/// loaded (held by no process: other xcaps may run meanwhile).
fn xcap_in_own_netns(args: &str) -> (Output, usize) {
    let before = loaded_programs(&[" name xcap_"]);
    let script = format!(
        "ip link set lo up; ping -i 0.2 127.0.0.1 >/dev/null 2>&1 & pinger=$!; \
         timeout 60 {} {args}; status=$?; kill $pinger; wait; exit $status",
        xcap_bin().display()
    );
    let out = output(Command::new("unshare").args(["-n", "sh", "-c", &script]));
    let left = programs_left(&[" name xcap_"])
        .into_keys()
        .filter(|id| !before.contains_key(id))
        .count();
    (out, left)
}

#[test]
fn kernels_older_than_6_1_are_refused_in_one_line_and_newer_ones_are_not() {
    let version = kernel_version();
    let modes = [
        "-i lo --xdp -c 1 icmp",
        "-i lo --tc -c 1 icmp",
        "--trace netif_receive_skb -c 1 icmp",
    ];
    for mode in modes {
        let (out, left) = xcap_in_own_netns(mode);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(left, 0, "{mode}: programs left loaded; {stderr}");
        if version < (6, 1) {
            assert_eq!(out.status.code(), Some(1), "{mode}: {stderr}");
            assert_eq!(lines.len(), 1, "{mode}: not one line: {stderr}");
            assert!(
                lines[0].starts_with("xcap: this kernel (")
                    && lines[0].contains(" lacks ")
                    && lines[0].ends_with("xcap needs Linux 6.1 or newer"),
                "{mode}: {}",
                lines[0]
            );
        } else {
            assert_eq!(out.status.code(), Some(0), "{mode}: {stderr}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(stdout.lines().count(), 1, "{mode}: {stdout}");
        }
    }
    report(&format!(
        "kernel requirements: Linux {}.{}: {} for --xdp, --tc and --trace",
        version.0,
        version.1,
        if version < (6, 1) {
            "refused in one line"
        } else {
            "accepted"
        }
    ));
}
