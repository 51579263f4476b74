//! The consumer side shared by live capture (`live.rs`) and tracing capture
//! (`trace.rs`): take batches until the readers are done, write each packet
//! as a text line or to a capture file, stop at `-c`, on a signal or on a
//! write error, then print tcpdump's counters.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use capture::savefile::Writer;
use capture::trace::{TraceCapture, TracePacket, TraceWriter};
use capture::{Capture, Packet, Stats};

/// A running capture, as the consumer loop sees it.
pub(crate) trait PacketSource {
    type Packet;
    fn detach(&mut self);
    /// The next batch; `Disconnected` once the readers are done.
    fn recv_packets(&self, timeout: Duration) -> Result<Vec<Self::Packet>, RecvTimeoutError>;
    fn stats(&self) -> Stats;
}

impl PacketSource for Capture {
    type Packet = Packet;
    fn detach(&mut self) {
        Capture::detach(self)
    }
    fn recv_packets(&self, timeout: Duration) -> Result<Vec<Packet>, RecvTimeoutError> {
        self.recv_timeout(timeout).map(|b| b.packets)
    }
    fn stats(&self) -> Stats {
        Capture::stats(self)
    }
}

impl PacketSource for TraceCapture {
    type Packet = TracePacket;
    fn detach(&mut self) {
        TraceCapture::detach(self)
    }
    fn recv_packets(&self, timeout: Duration) -> Result<Vec<TracePacket>, RecvTimeoutError> {
        self.recv_timeout(timeout)
    }
    fn stats(&self) -> Stats {
        TraceCapture::stats(self)
    }
}

/// A capture file writer (pcap or pcapng for live capture, pcapng for
/// tracing); only flushing is common to both.
pub(crate) trait CaptureFile {
    fn flush(&mut self) -> io::Result<()>;
}

impl<W: Write> CaptureFile for Writer<W> {
    fn flush(&mut self) -> io::Result<()> {
        Writer::flush(self)
    }
}

impl<W: Write> CaptureFile for TraceWriter<W> {
    fn flush(&mut self) -> io::Result<()> {
        TraceWriter::flush(self)
    }
}

/// Where packets go: one line each on stdout, or a capture file (`-w`).
pub(crate) enum Output<F> {
    Text(BufWriter<io::Stdout>),
    File(F),
}

/// How the capture ended.
pub(crate) struct Consumed {
    pub captured: u64,
    /// The first write error; the capture was detached when it happened.
    pub write_error: Option<io::Error>,
    /// The counters, read after the readers drained their rings.
    pub stats: Stats,
}

/// What the consumer loop does for one kind of capture.
pub(crate) struct Handlers<Tick, Line, Record> {
    /// Called before every wait for a batch (after the signal check), e.g.
    /// to detach when an interface disappears.
    pub tick: Tick,
    /// The text line of a packet, with its newline.
    pub text_line: Line,
    /// Writes a packet to the capture file.
    pub write_record: Record,
    /// End text output with a newline when a signal stops the capture, as
    /// tcpdump does (live capture; tracing has no tcpdump to follow).
    pub newline_on_signal: bool,
}

/// Runs the capture until the readers are done: detaches on a signal, once
/// `-c` packets are written, or on a write error, and keeps taking
/// batches until the readers have drained their rings. Flushes the output,
/// reads the counters, then drops the capture (which joins the readers).
pub(crate) fn consume<C, F, Tick, Line, Record>(
    mut cap: C,
    out: &mut Output<F>,
    args: &crate::args::RunArgs,
    handlers: Handlers<Tick, Line, Record>,
) -> Consumed
where
    C: PacketSource,
    F: CaptureFile,
    Tick: FnMut(&mut C),
    Line: Fn(&C, &C::Packet) -> String,
    Record: FnMut(&mut F, &C, &C::Packet) -> io::Result<()>,
{
    let Handlers {
        mut tick,
        text_line,
        mut write_record,
        newline_on_signal,
    } = handlers;
    // -c, and -U or -l.
    let count = args.count;
    let packet_buffered = args.flush_each_packet();
    let mut captured: u64 = 0;
    let mut write_error: Option<io::Error> = None;
    loop {
        if crate::live::STOP.load(Ordering::SeqCst) {
            cap.detach();
        }
        tick(&mut cap);
        // A signal wakes this wait (`live::set_waker`); the timeout only
        // paces `tick`.
        let batch = match cap.recv_packets(Duration::from_secs(1)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for p in &batch {
            if write_error.is_some() || count.is_some_and(|c| captured >= c) {
                break;
            }
            let r = match out {
                Output::Text(w) => w.write_all(text_line(&cap, p).as_bytes()).and_then(|_| {
                    if packet_buffered {
                        w.flush()
                    } else {
                        Ok(())
                    }
                }),
                Output::File(w) => write_record(w, &cap, p).and_then(|_| {
                    if packet_buffered {
                        w.flush()
                    } else {
                        Ok(())
                    }
                }),
            };
            match r {
                Ok(()) => captured += 1,
                Err(e) => {
                    write_error = Some(e);
                    cap.detach();
                }
            }
            if count.is_some_and(|c| captured >= c) {
                cap.detach();
            }
        }
        // Text goes out a batch at a time; files are flushed by the writer.
        if let Output::Text(w) = out {
            if let Err(e) = w.flush() {
                write_error.get_or_insert(e);
                cap.detach();
            }
        }
    }
    let flushed = match out {
        // As tcpdump, interrupted while printing: a newline, in case a
        // line was cut short (its counters then follow on stderr).
        Output::Text(w)
            if newline_on_signal
                && crate::live::STOP.load(Ordering::SeqCst)
                && write_error.is_none() =>
        {
            w.write_all(b"\n").and_then(|_| w.flush())
        }
        Output::Text(w) => w.flush(),
        Output::File(w) => w.flush(),
    };
    if let Err(e) = flushed {
        write_error.get_or_insert(e);
    }
    let stats = cap.stats();
    drop(cap);
    Consumed {
        captured,
        write_error,
        stats,
    }
}

/// tcpdump's three counters on stderr; with `-v`, the raw counters too
/// (`seen` names what the programs ran on).
pub(crate) fn print_counters(captured: u64, stats: &Stats, verbose: bool, seen: &str) {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    // Packets lost to a full ring are counted by the program (failed
    // output) and, for perf buffers, by perf when it gets to: take the
    // larger.
    let dropped = stats.output_errors.max(stats.perf_lost);
    eprintln!("{captured} packet{} captured", plural(captured));
    eprintln!(
        "{} packet{} received by filter",
        stats.matched,
        plural(stats.matched)
    );
    eprintln!("{dropped} packet{} dropped by kernel", plural(dropped));
    if verbose {
        eprintln!(
            "xcap: {} {seen} seen by the programs, {} not written to a full buffer{}",
            stats.seen,
            stats.output_errors,
            if stats.perf_lost > 0 {
                format!(", {} reported lost by perf", stats.perf_lost)
            } else {
                String::new()
            }
        );
    }
}

/// Reports a write error on stderr and says whether it fails the run. A
/// closed pipe does not: the reader (`| head`) simply stopped, as with
/// tcpdump.
pub(crate) fn report_write_error(error: Option<io::Error>, path: Option<&str>) -> bool {
    match error {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            let path = path.unwrap_or("stdout");
            eprintln!("xcap: {path}: {}", crate::out::io_message(&e));
            true
        }
        _ => false,
    }
}
