//! The generator's traffic: 72-byte UDP frames, one in `every` matching
//! the filter, sent by one trafgen worker from the sending namespace.

use std::fmt::Write as _;
use std::io::{BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::netns::{CAP_MAC, GEN_IF, GEN_MAC};

pub(super) const FRAME_LEN: usize = 72;

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
pub(super) fn trafgen_conf(every: usize) -> String {
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
pub(super) fn frame(dport: u16) -> Vec<u8> {
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
pub(super) struct Generator {
    child: Child,
    out: mpsc::Receiver<String>,
}

impl Generator {
    pub(super) fn start(ns: &str, conf: &Path, rate: Option<u64>) -> Result<Generator> {
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
    pub(super) fn stop(mut self) -> Result<Option<u64>> {
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

/// A steady sender for long runs: a thread in the sending namespace
/// writes a batch of matching frames to a packet socket every tick. A
/// tick missed (the machine busy) is skipped, never made up, so the rate
/// never goes above the one asked (trafgen's `-b` sends bursts far above
/// it to catch up after a busy spell).
pub(super) struct Paced {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<u64>>,
}

const TICK: Duration = Duration::from_millis(100);

impl Paced {
    pub(super) fn start(ns: &str, rate: u64) -> Result<Paced> {
        let nsf = std::fs::File::open(format!("/run/netns/{ns}"))
            .with_context(|| format!("opening /run/netns/{ns}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let per_tick = (rate as f64 * TICK.as_secs_f64()).round().max(1.0) as u64;
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || -> Result<u64> {
                // SAFETY: setns on this thread only; it ends with the run.
                if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns: {}", std::io::Error::last_os_error());
                }
                let socket = PacketSocket::open(GEN_IF)?;
                let frame = frame(9);
                let (mut sent, mut next) = (0u64, Instant::now());
                while !stop.load(Ordering::SeqCst) {
                    for _ in 0..per_tick {
                        sent += u64::from(socket.send(&frame));
                    }
                    next += TICK;
                    let now = Instant::now();
                    match next.checked_duration_since(now) {
                        Some(wait) => std::thread::sleep(wait),
                        // Behind: start again from now.
                        None => next = now,
                    }
                }
                Ok(sent)
            })
        };
        Ok(Paced { stop, thread })
    }

    /// Stops sending; the frames sent.
    pub(super) fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the sender panicked"))?
    }
}

/// A raw packet socket bound to one interface (in the thread's namespace).
struct PacketSocket {
    fd: OwnedFd,
    addr: libc::sockaddr_ll,
}

impl PacketSocket {
    fn open(ifname: &str) -> Result<PacketSocket> {
        let name = std::ffi::CString::new(ifname)?;
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!("{ifname}: {}", std::io::Error::last_os_error());
        }
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            bail!("packet socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just got.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&CAP_MAC);
        Ok(PacketSocket { fd, addr })
    }

    /// Whether the kernel took the frame.
    fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: the frame and the address outlive the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&self.addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        n == frame.len() as isize
    }
}

/// `every` of 1% matching traffic (one frame in `every` matches).
pub(super) const ONE_PCT: usize = 100;

/// The matching share as the tables write it.
pub(super) fn pct(every: usize) -> &'static str {
    if every == 1 {
        "100%"
    } else {
        "1%"
    }
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
