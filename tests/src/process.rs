//! Running the programs the tests drive (ip, tc, tcpdump, xcap, ...): to
//! their end, with or without a verdict on the exit status, or in the
//! background with stderr read as it comes; and one test at a time where
//! tests share what they watch.
//!
//! A program that cannot start (not installed: `scripts/setup.sh`
//! installs them all) fails the test.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a background program may take to say it is ready, or to exit.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `cmd` to its end; its exit status is the caller's to judge.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("can't run {cmd:?}: {e} (scripts/setup.sh installs the tools)"))
}

/// Runs `cmd`, which must succeed.
pub fn run(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`run`]'s standard output, as text.
pub fn run_text(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// Runs a shell script with `set -e`: every command in it must succeed.
pub fn sh(script: &str) -> Output {
    run(Command::new("sh").args(["-ec", script]))
}

/// Runs `script` (sh, `set -e`) in a private mount namespace where `$D` is
/// a fresh bpffs: pins made there vanish with the namespace. Its stdout.
pub fn with_bpffs(script: &str) -> String {
    let full = format!(
        "set -e; D=$(mktemp -d); mount -t bpf bpf \"$D\"; {script}; umount \"$D\"; rmdir \"$D\""
    );
    run_text(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &full]))
}

/// Links BPF objects into `out` with libbpf's linker (`bpftool gen
/// object`), as a C user of xcap's filter objects would.
pub fn bpftool_link(out: &Path, inputs: &[&Path]) {
    run(Command::new("bpftool")
        .args(["gen", "object"])
        .arg(out)
        .args(inputs));
}

/// The test binary's one turn, held for a whole test by tests that must not
/// overlap: captures timed against each other, tracing hooks that see every
/// namespace. A test that failed holding it does not fail the next.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A program running in the background (a capture: xcap, tcpdump, a pipe
/// of both), its stderr read line by line as it comes, so that the test can
/// wait for what it says and see all of it at the end. Killed if the test
/// fails before it ends.
pub struct Proc {
    child: Child,
    stderr: mpsc::Receiver<String>,
    /// Its stderr so far, line by line.
    pub lines: Vec<String>,
    /// Its whole stdout, when kept ([`Proc::start_keeping_stdout`]).
    stdout: Option<JoinHandle<String>>,
}

impl Proc {
    /// Starts `cmd`, its stdout discarded.
    pub fn start(cmd: Command) -> Proc {
        Proc::start_to(cmd, Stdio::null())
    }

    /// Starts `cmd`, its stdout kept for [`Proc::finish_with_stdout`].
    pub fn start_keeping_stdout(cmd: Command) -> Proc {
        let mut p = Proc::start_to(cmd, Stdio::piped());
        let mut out = p.child.stdout.take().expect("piped stdout");
        p.stdout = Some(std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        }));
        p
    }

    /// Starts `cmd`, its stdout going to `out`.
    pub fn start_to(mut cmd: Command, out: Stdio) -> Proc {
        cmd.stdout(out).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let err = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            stderr: rx,
            lines: Vec::new(),
            stdout: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line of stderr that contains `marker`; when the program
    /// exits or stays silent, stops it and fails with what it said.
    pub fn wait_for(&mut self, what: &str, marker: &str) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let done = l.contains(marker);
                    self.lines.push(l);
                    if done {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        panic!(
            "{what} did not start ({status}; waited for {marker:?}): {}",
            self.lines.join("\n")
        );
    }

    /// Starts xcap at hooks (`cmd`), its stdout kept, and waits for the
    /// stderr line with `marker`, which it prints once every hook is
    /// attached.
    pub fn start_hooked(cmd: Command, marker: &str) -> Proc {
        let mut p = Proc::start_keeping_stdout(cmd);
        p.wait_for("xcap", marker);
        // Every hook is attached before that line; a moment more for the
        // attached programs to be running everywhere.
        std::thread::sleep(Duration::from_millis(200));
        p
    }

    /// SIGINT, once the packets had `settle` to arrive; xcap's exit
    /// status and stdout.
    pub fn interrupt_after(self, settle: Duration) -> (i32, String) {
        std::thread::sleep(settle);
        self.signal(libc::SIGINT);
        let (code, _, stdout) = self.finish_with_stdout("xcap");
        (code, stdout)
    }

    /// Waits for a capture's "listening on" line (xcap's and tcpdump's).
    pub fn wait_listening(&mut self, what: &str) {
        self.wait_for(what, "listening on");
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill on our child's pid, which it keeps until we wait.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the exit; the exit code (-1: ended by a signal) and every
    /// line of stderr.
    pub fn finish(self, what: &str) -> (i32, Vec<String>) {
        let (code, lines, _) = self.finish_with_stdout(what);
        (code, lines)
    }

    /// [`Proc::finish`], and the whole stdout when kept (else empty).
    pub fn finish_with_stdout(mut self, what: &str) -> (i32, Vec<String>, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{what} did not stop: {}", self.lines.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            self.lines.push(l);
        }
        let stdout = self
            .stdout
            .take()
            .map(|t| t.join().expect("stdout reader"))
            .unwrap_or_default();
        (
            status.code().unwrap_or(-1),
            std::mem::take(&mut self.lines),
            stdout,
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `fields` of every packet in the capture file at `path`, as tshark
/// prints them.
pub fn tshark_fields(path: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(path).args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    run_text(&mut cmd)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}
