//! The two private network namespaces and the veth pair between them
//! (`xbg<pid>` sends, `xbc<pid>` receives and captures), and the
//! counters a frame passes on its way to the hook.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

use super::ethtool::Ethtool;
use super::shell::sh;

/// Addresses are used only inside the two namespaces.
pub(super) const GEN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x01];
pub(super) const CAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x02];
pub(super) const GEN_IF: &str = "xbv0";
pub(super) const CAP_IF: &str = "xbv1";

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `/proc/net/dev` and a socket, both opened inside a network namespace, so
/// its counters can be read from here without spawning anything (a spawn
/// inside the measurement window would be CPU time of its own).
pub(super) struct NsView {
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
    pub(super) fn dev(&mut self, iface: &str) -> Result<[u64; 4]> {
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

/// Backlog drops (column 2 of /proc/net/softnet_stat), summed over CPUs.
fn backlog_drops() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/net/softnet_stat")?;
    Ok(s.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|x| u64::from_str_radix(x, 16).unwrap_or(0))
        .sum())
}

/// The two namespaces; deleted on drop (which deletes the veth pair).
pub(super) struct Netns {
    pub(super) gen: String,
    pub(super) cap: String,
    gen_view: NsView,
    pub(super) cap_view: NsView,
    pub(super) ethtool: Option<Ethtool>,
}

impl Netns {
    /// Creates the namespaces and the pair; on failure deletes what it made.
    pub(super) fn new() -> Result<Netns> {
        let id = std::process::id();
        let gen = format!("xbg{id}");
        let cap = format!("xbc{id}");
        sh(&["ip", "netns", "add", &gen])?;
        let r = (|| {
            sh(&["ip", "netns", "add", &cap])?;
            disable_ipv6(&gen, &cap)?;
            add_veth_pair(&gen, &cap)?;
            Netns::open(&gen, &cap)
        })();
        if r.is_err() {
            let _ = sh(&["ip", "netns", "del", &gen]);
            let _ = sh(&["ip", "netns", "del", &cap]);
        }
        r
    }

    /// The views that read the counters from here.
    fn open(gen: &str, cap: &str) -> Result<Netns> {
        let gen_view = NsView::open(gen)?;
        let cap_view = NsView::open(cap)?;
        let ethtool = Ethtool::new(&cap_view.sock, CAP_IF).ok();
        Ok(Netns {
            gen: gen.to_string(),
            cap: cap.to_string(),
            gen_view,
            cap_view,
            ethtool,
        })
    }

    pub(super) fn counters(&mut self) -> Result<Counters> {
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

/// No IPv6 (router solicitations, MLD and DAD frames would cross the
/// pair and spoil the counts).
fn disable_ipv6(gen: &str, cap: &str) -> Result<()> {
    for ns in [gen, cap] {
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
    Ok(())
}

/// The veth pair, up, with the MACs the frames name. The receiver owns
/// the destination address (frames go up to UDP) but has no route back
/// to the sender, so it sends nothing: no ARP, no ICMP port unreachable.
fn add_veth_pair(gen: &str, cap: &str) -> Result<()> {
    sh(&[
        "ip", "-n", gen, "link", "add", GEN_IF, "type", "veth", "peer", "name", CAP_IF, "netns",
        cap,
    ])?;
    sh(&[
        "ip",
        "-n",
        gen,
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
        cap,
        "link",
        "set",
        CAP_IF,
        "address",
        &mac(CAP_MAC),
        "up",
    ])?;
    sh(&["ip", "-n", cap, "link", "set", "lo", "up"])?;
    sh(&[
        "ip",
        "-n",
        cap,
        "addr",
        "add",
        "10.99.0.2/32",
        "dev",
        CAP_IF,
    ])?;
    Ok(())
}

#[derive(Clone, Copy, Default)]
pub(super) struct Counters {
    /// Sender veth: frames handed to the peer, and refused.
    pub(super) tx_packets: u64,
    pub(super) tx_dropped: u64,
    /// Receiving veth (its rx_packets is the frames it processed: in NAPI
    /// mode the frames its poll took off the ring, which XDP runs on).
    pub(super) rx_packets: u64,
    pub(super) rx_dropped: u64,
    /// softnet_stat column 2, all CPUs: netif_rx backlog full.
    pub(super) backlog_drops: u64,
    /// ethtool -S drops/errors of the receiving veth, if readable.
    pub(super) veth_drops: Option<u64>,
}

impl Counters {
    pub(super) fn delta(&self, a: &Counters) -> Counters {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_is_made_counted_and_deleted_with_its_namespaces() {
        let mut n = Netns::new().unwrap();
        let paths = [n.gen.clone(), n.cap.clone()].map(|ns| format!("/run/netns/{ns}"));
        assert!(paths.iter().all(|p| std::path::Path::new(p).exists()));
        // Nothing crosses a fresh pair: no IPv6, no route back.
        let before = n.counters().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let d = n.counters().unwrap().delta(&before);
        assert_eq!((d.tx_packets, d.rx_packets), (0, 0));
        drop(n);
        assert!(paths.iter().all(|p| !std::path::Path::new(p).exists()));
    }
}
