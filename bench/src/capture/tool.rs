//! A capture tool (tcpdump, xcap) started in the capture namespace: how
//! long it took to listen, and its three counter lines when stopped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A capture command started in the capture namespace, listening.
pub(super) struct Tool {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub(super) startup: Duration,
}

#[derive(Clone, Copy, Default)]
pub(super) struct ToolStats {
    pub(super) captured: u64,
    pub(super) received: u64,
    pub(super) dropped: u64,
}

fn interrupt(child: &mut Child) -> Result<()> {
    // SAFETY: signalling a child we started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.wait();
    Ok(())
}

impl Tool {
    /// Starts `cmd` in namespace `ns` and waits until it says it is
    /// listening.
    pub(super) fn start(ns: &str, cmd: &[String]) -> Result<Tool> {
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
                        return Ok(Tool {
                            child,
                            lines: rx,
                            startup: t.elapsed(),
                        });
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

    /// The tool's process id (`ip netns exec` execs it in place).
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then tcpdump's three counter lines.
    pub(super) fn stop(mut self) -> Result<Option<ToolStats>> {
        interrupt(&mut self.child)?;
        // The reader thread ends at EOF; take every line it still has.
        let mut lines = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        let num = |key: &str| -> Option<u64> {
            lines
                .iter()
                .find(|l| l.contains(key))
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
        };
        Ok(Some(ToolStats {
            captured: match num("packets captured") {
                Some(n) => n,
                None => return Ok(None),
            },
            received: num("received by filter").unwrap_or(0),
            dropped: num("dropped by kernel").unwrap_or(0),
        }))
    }
}
