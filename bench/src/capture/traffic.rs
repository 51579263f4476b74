//! The generator's traffic: 72-byte UDP frames, one in `every` matching
//! the filter, sent by one trafgen worker from the sending namespace.

use std::fmt::Write as _;
use std::io::{BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
