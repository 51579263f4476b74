//! A run from a source to a sink.
//!
//! A capture in the kernel ([`capture()`]) runs until `-c` packets are
//! written, a signal (SIGINT, SIGTERM), a write error or the source's own
//! end; then the readers drain what the programs wrote, and tcpdump's
//! counters go to stderr. A file ([`read_file`]) is read as `tcpdump -r`
//! reads it: no signal handling, no counters, and a write error ends the
//! run at once.

use std::io;
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::plan::{self, Output, ReadFile};
use crate::privileges;
use crate::sink::{print_counters, report_write_error, Counters, Files, Printer, Room, Sink};
use crate::source::file::{self, pcap_message, FileSource};
use crate::source::{followed, live, trace, Source};

/// A capture at the plan's hooks: at interfaces, at tracing hooks, or
/// both (a packet followed across them).
pub fn capture(plan: &plan::Capture) -> Result<ExitCode> {
    // Before any thread starts (they inherit it).
    if let Some(ns) = &plan.netns {
        capture::netns::enter(ns).map_err(|e| anyhow!(e))?;
    }
    match (plan.on_interfaces(), plan.at_tracing_hooks()) {
        (true, true) => {
            let configs = (live::config(plan)?, trace::config(plan));
            run(plan, || {
                or_without_processes(
                    plan,
                    &configs,
                    |(live, trace), plan| followed::Followed::start(live, trace, plan),
                    |(live, trace)| {
                        live.who = None;
                        trace.who = None;
                    },
                )
            })
        }
        (true, false) => {
            let config = live::config(plan)?;
            run(plan, || {
                or_without_processes(plan, &config, live::Live::start, |c| {
                    c.who = None;
                })
            })
        }
        (false, _) => {
            let config = trace::config(plan);
            run(plan, || {
                or_without_processes(plan, &config, trace::Trace::start, |c| {
                    c.who = None;
                })
            })
        }
    }
}

/// Starts the capture; when it attributes only because of `-v` (no
/// `--who`, process filter or `-- CMD`) and cannot start, starts it again
/// without attribution (`unattributed`), saying why in one line: a kernel
/// that lacks what attribution needs still captures with `-v`.
fn or_without_processes<C: Clone, S>(
    plan: &plan::Capture,
    config: &C,
    start: impl Fn(&C, &plan::Capture) -> Result<S>,
    unattributed: impl FnOnce(&mut C),
) -> Result<S> {
    match start(config, plan) {
        Err(e) if plan.who.is_some() && !plan.who_required => {
            let mut config = config.clone();
            unattributed(&mut config);
            let source = start(&config, plan)?;
            eprintln!("xcap: capturing without processes: {e:#}");
            Ok(source)
        }
        other => other,
    }
}

fn run<S: Source>(plan: &plan::Capture, start: impl FnOnce() -> Result<S>) -> Result<ExitCode> {
    // Before anything is attached: a -Z user that does not exist.
    let user = privileges::user_to_become(&plan.run_as)?;
    // Before the capture's threads start, so that they inherit the mask.
    signals::catch();
    let source = start()?;
    signals::wake_with(source.waker());
    // Once attached (on an error `source` is dropped, which detaches).
    let mut sink = Sink::open(&plan.output, |stream| source.open_file(stream))?;
    if let Some(user) = &user {
        relinquish(user, &sink, plan.verbose)?;
    }
    if !plan.quiet_stderr {
        source.announce();
    }
    let ended = consume(source, &mut sink, plan);
    Ok(ended.report(plan, S::SEEN))
}

/// Root given up, once attached and the first file open (`-Z`).
fn relinquish<F>(user: &privileges::User, sink: &Sink<Files<F>>, verbose: bool) -> Result<()>
where
    F: crate::sink::RecordFile,
{
    let (file, rotates) = match sink {
        Sink::File(files) => (Some(files.name()), files.rotates()),
        Sink::Text(_) => (None, false),
    };
    let kept = privileges::become_user(user, file, rotates)?;
    if verbose {
        eprintln!(
            "xcap: running as {}, keeping {}",
            user.name,
            kept.names().join(", ")
        );
    }
    Ok(())
}

/// How a capture ended.
struct Ended {
    captured: u64,
    /// The first write error; the capture was detached when it happened.
    write_error: Option<io::Error>,
    /// The counters, read after the readers drained their buffers.
    stats: Counters,
    /// Why the capture failed on its own, if it did.
    failure: Option<String>,
    /// Whether packets went to `-w` files (whose errors name them).
    to_files: bool,
    /// `-- CMD`'s exit status.
    command_status: Option<u8>,
}

/// Takes batches until the readers are done: detaches on a signal, once
/// `-c` packets are written, or on a write error, and keeps taking
/// batches until the readers have drained their buffers. Flushes the
/// output, reads the counters, then closes the capture.
fn consume<S: Source>(
    mut source: S,
    sink: &mut Sink<Files<S::File>>,
    plan: &plan::Capture,
) -> Ended {
    let mut written = Written::default();
    loop {
        if signals::stopped() {
            source.detach();
        }
        source.tick();
        // A signal wakes this wait (`signals::wake_with`); the timeout
        // only paces `tick`.
        let batch = match source.recv(Duration::from_secs(1)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        written.batch(&mut source, sink, plan, &batch);
    }
    let interrupted = S::NEWLINE_ON_SIGNAL && signals::stopped() && written.error.is_none();
    if let Err(e) = sink.finish(interrupted) {
        written.error.get_or_insert(e);
    }
    let stats = source.stats();
    let command_status = source.command_status();
    Ended {
        captured: written.count,
        write_error: written.error,
        stats,
        failure: source.close(),
        to_files: matches!(sink, Sink::File(_)),
        command_status,
    }
}

/// What the consumer wrote so far.
#[derive(Default)]
struct Written {
    count: u64,
    error: Option<io::Error>,
    /// `-G` with `-W`: the last file was closed.
    files_done: bool,
}

impl Written {
    fn done(&self, plan: &plan::Capture) -> bool {
        self.error.is_some() || self.files_done || plan.count.is_some_and(|c| self.count >= c)
    }

    /// Writes the batch's packets until done; detaches when done.
    fn batch<S: Source>(
        &mut self,
        source: &mut S,
        sink: &mut Sink<Files<S::File>>,
        plan: &plan::Capture,
        batch: &[S::Packet],
    ) {
        for p in batch {
            if self.done(plan) {
                break;
            }
            match put(source, sink, p, plan.flush_each_packet) {
                Ok(Room::Open) => self.count += 1,
                Ok(Room::LimitReached) => self.files_done = true,
                Err(e) => self.error = Some(e),
            }
            if self.done(plan) {
                source.detach();
            }
        }
        if let Err(e) = sink.end_batch() {
            self.error.get_or_insert(e);
            source.detach();
        }
    }
}

/// One packet: its line, or its record in the file (a new one if the
/// rotation says so); not written once `-W` files are done.
fn put<S: Source>(
    source: &S,
    sink: &mut Sink<Files<S::File>>,
    p: &S::Packet,
    flush_each_packet: bool,
) -> io::Result<Room> {
    match sink {
        Sink::Text(printer) => printer.print(&source.line(p))?,
        Sink::File(files) => {
            let room = files.before_record(source.time_ns(p), |s| source.open_file(s))?;
            if room == Room::LimitReached {
                return Ok(room);
            }
            files.write(|file| source.write_record(file, p))?;
        }
    }
    if flush_each_packet {
        sink.flush()?;
    }
    Ok(Room::Open)
}

impl Ended {
    /// The failure, tcpdump's counters, the write error; the exit status.
    fn report(self, plan: &plan::Capture, seen: &str) -> ExitCode {
        if let Some(failure) = &self.failure {
            eprintln!("xcap: {failure}");
        }
        if !plan.quiet_stderr {
            print_counters(self.captured, &self.stats, plan.verbose, seen);
        }
        let write_failed = report_write_error(self.write_error, self.to_files);
        if write_failed || self.failure.is_some() {
            return ExitCode::from(1);
        }
        ExitCode::from(self.command_status.unwrap_or(0))
    }
}

/// `-r FILE`: the matches printed, or written to `-w` as `tcpdump -r -w`
/// writes them (libpcap's savefile, opened before the first packet, so
/// that no match still leaves a valid file).
pub fn read_file(plan: &ReadFile) -> Result<ExitCode> {
    let mut source = FileSource::open(plan)?;
    let mut sink = match &plan.output {
        Output::Text(style) => Sink::Text(Printer::new(*style)),
        Output::File { path, .. } => Sink::File(source.savefile(path)?),
    };
    let link = source.link();
    source.each_match(plan.count, |packet| {
        match &mut sink {
            Sink::Text(printer) => {
                printer.print(&file::line(link, packet))?;
                if plan.flush_each_packet {
                    printer.flush()?;
                }
            }
            Sink::File(savefile) => savefile.write(packet),
        }
        Ok(())
    })?;
    match sink {
        Sink::Text(mut printer) => printer.flush()?,
        Sink::File(mut savefile) => savefile.flush().map_err(|e| {
            let path = plan.output.path().unwrap_or("-");
            anyhow!("{path}: write error: {}", pcap_message(&e))
        })?,
    }
    source.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM stop a capture: taken by a thread of their own,
/// they set a flag and wake the consumer.
mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    static STOP: AtomicBool = AtomicBool::new(false);

    /// Wakes the consumer when a signal sets [`STOP`] (it waits for
    /// packets without a short timeout); set once the capture runs.
    static WAKER: Mutex<Option<capture::Waker>> = Mutex::new(None);

    /// Whether a signal asked the capture to stop.
    pub fn stopped() -> bool {
        STOP.load(Ordering::SeqCst)
    }

    pub fn wake_with(waker: capture::Waker) {
        *WAKER.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker);
    }

    extern "C" fn ignore_signal(_: libc::c_int) {}

    /// Blocks SIGINT and SIGTERM in this thread (and the threads it
    /// starts), and turns them into [`STOP`] from a thread of their own.
    /// The signals get a handler first: a shell starts background jobs
    /// with SIGINT ignored, and an ignored signal is discarded even while
    /// blocked.
    pub fn catch() {
        // SAFETY: plain signal-disposition and signal-mask calls.
        unsafe {
            libc::signal(
                libc::SIGINT,
                ignore_signal as *const () as libc::sighandler_t,
            );
            libc::signal(
                libc::SIGTERM,
                ignore_signal as *const () as libc::sighandler_t,
            );
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            std::thread::spawn(move || loop {
                let mut sig: libc::c_int = 0;
                if libc::sigwait(&set, &mut sig) == 0 {
                    STOP.store(true, Ordering::SeqCst);
                    if let Some(w) = WAKER.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                        w.wake();
                    }
                }
            });
        }
    }
}
