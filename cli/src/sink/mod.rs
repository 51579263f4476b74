//! Where packets go: a line each on stdout ([`Printer`]), or capture
//! files (`-w`, rotated by `-C` and `-G`: [`rotation`]); and, at the end
//! of a capture, tcpdump's counters and the first write error.

mod rotation;

use std::io::{self, BufWriter, Stdout, Write};

use anyhow::{anyhow, Result};
use capture::savefile::Writer;
use capture::trace::TraceWriter;
use capture::Stats;

use crate::out::io_message;
use crate::plan::Output;
use crate::print::{Clock, Line, Style};

pub use rotation::{Files, Room, Stream};

/// Where one run's packets go.
pub enum Sink<F> {
    Text(Printer),
    /// Capture files (a capture's `-w`), or one file (`-r`'s), its header
    /// written.
    File(F),
}

/// A capture file writer (pcap or pcapng for live capture, pcapng for
/// tracing); all the sink does with it besides writing is flushing.
pub trait RecordFile {
    fn flush(&mut self) -> io::Result<()>;
}

impl<W: Write> RecordFile for Writer<W> {
    fn flush(&mut self) -> io::Result<()> {
        Writer::flush(self)
    }
}

impl<W: Write> RecordFile for TraceWriter<W> {
    fn flush(&mut self) -> io::Result<()> {
        TraceWriter::flush(self)
    }
}

impl<F: RecordFile> Sink<Files<F>> {
    /// The printer, or `-w`'s first file: created, handed to `open_file`
    /// for its header (which names what was attached, so a capture opens
    /// it once attached), and flushed, so that readers of `-w -`
    /// (`tcpdump -r -`) start on the header.
    pub fn open(output: &Output, open_file: impl FnOnce(Stream) -> io::Result<F>) -> Result<Self> {
        let (path, rotation) = match output {
            Output::Text(style) => return Ok(Sink::Text(Printer::new(*style))),
            Output::File { path, rotation, .. } => (path, rotation.as_ref()),
        };
        // Its errors name the file.
        let failed = |e: io::Error| anyhow!("{}", io_message(&e));
        let mut files = Files::open(path, rotation, open_file).map_err(failed)?;
        files.flush().map_err(failed)?;
        Ok(Sink::File(files))
    }

    /// Everything written so far out of our buffers.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Text(printer) => printer.flush(),
            Sink::File(file) => file.flush(),
        }
    }

    /// At the end: everything out. Text interrupted by a signal first
    /// gets a newline, as tcpdump's, in case a line was cut short (the
    /// counters then follow on stderr).
    pub fn finish(&mut self, interrupted: bool) -> io::Result<()> {
        match self {
            Sink::Text(printer) => {
                if interrupted {
                    printer.out.write_all(b"\n")?;
                }
                printer.flush()
            }
            Sink::File(files) => files.finish(),
        }
    }

    /// After each batch: text goes out a batch at a time; a file's writer
    /// flushes as its buffer fills.
    pub fn end_batch(&mut self) -> io::Result<()> {
        match self {
            Sink::Text(printer) => printer.flush(),
            Sink::File(_) => Ok(()),
        }
    }
}

/// Prints packets' lines on stdout, in the run's [`Style`].
pub struct Printer {
    out: BufWriter<Stdout>,
    style: Style,
    clock: Clock,
}

impl Printer {
    pub fn new(style: Style) -> Self {
        Printer {
            out: BufWriter::new(io::stdout()),
            style,
            clock: Clock::default(),
        }
    }

    pub fn print(&mut self, line: &Line) -> io::Result<()> {
        let text = line.render(&self.style, &mut self.clock);
        self.out.write_all(text.as_bytes())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A run's counters, from one capture or added up over several (a packet
/// followed across interface and tracing hooks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets the programs ran on (`-v`).
    pub seen: u64,
    /// tcpdump's "received by filter".
    pub matched: u64,
    /// tcpdump's "dropped by kernel".
    pub dropped: u64,
    /// `-v`: records not written to a full buffer, losses perf reported.
    pub output_errors: u64,
    pub perf_lost: u64,
}

impl From<Stats> for Counters {
    fn from(s: Stats) -> Self {
        Counters {
            seen: s.seen,
            matched: s.matched,
            // Packets lost to a full buffer are counted by the program
            // (failed output) and, for perf buffers, by perf when it gets
            // to: the same packets, so the larger, not the sum.
            dropped: s.output_errors.max(s.perf_lost),
            output_errors: s.output_errors,
            perf_lost: s.perf_lost,
        }
    }
}

impl std::ops::Add for Counters {
    type Output = Counters;

    /// Two captures' counters: their packets are distinct, so each count
    /// is the sum.
    fn add(self, o: Counters) -> Counters {
        Counters {
            seen: self.seen + o.seen,
            matched: self.matched + o.matched,
            dropped: self.dropped + o.dropped,
            output_errors: self.output_errors + o.output_errors,
            perf_lost: self.perf_lost + o.perf_lost,
        }
    }
}

/// tcpdump's three counters on stderr; with `-v`, the raw counters too
/// (`seen` names what the programs ran on).
pub fn print_counters(captured: u64, counters: &Counters, verbose: bool, seen: &str) {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let c = counters;
    eprintln!("{captured} packet{} captured", plural(captured));
    eprintln!(
        "{} packet{} received by filter",
        c.matched,
        plural(c.matched)
    );
    eprintln!(
        "{} packet{} dropped by kernel",
        c.dropped,
        plural(c.dropped)
    );
    if verbose {
        eprintln!(
            "xcap: {} {seen} seen by the programs, {} not written to a full buffer{}",
            c.seen,
            c.output_errors,
            if c.perf_lost > 0 {
                format!(", {} reported lost by perf", c.perf_lost)
            } else {
                String::new()
            }
        );
    }
}

/// Reports a write error on stderr and says whether it fails the run. A
/// closed pipe does not: the reader (`| head`) simply stopped, as with
/// tcpdump. Errors of `-w` files name their file ([`Files`]); others are
/// stdout's.
pub fn report_write_error(error: Option<io::Error>, to_files: bool) -> bool {
    match error {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            let from = if to_files { "" } else { "stdout: " };
            eprintln!("xcap: {from}{}", io_message(&e));
            true
        }
        _ => false,
    }
}
