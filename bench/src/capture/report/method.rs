//! How section 2 measures: the setup, the CPU figures and the baselines,
//! with the parameters of this run.

use std::fmt::Write as _;

use super::super::config::Config;
use super::super::rates::RateRuns;
use super::super::setups::{FILTER, SNAPLEN};

pub(super) fn write(s: &mut String, cfg: &Config, rates: &RateRuns) {
    setup(s, cfg, rates);
    cpu_figures(s, cfg, rates);
    baselines(s);
}

/// The veth pair, the generator, the filter and the runs.
fn setup(s: &mut String, cfg: &Config, rates: &RateRuns) {
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
        rates.fixed_rate / 1000,
        rates.fixed_rate,
        cfg.runs
    );
}

/// What "CPU ns/packet" and "tasks ns/packet" count, and the gate on
/// other work.
fn cpu_figures(s: &mut String, cfg: &Config, rates: &RateRuns) {
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
        rates.contaminated,
        rates.max_steal * 100.0
    );
}

/// What "over no capture" and "over bare" compare with.
fn baselines(s: &mut String) {
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
}
