//! Where packets come from: a live capture at XDP or TC ([`live`]), a
//! capture at tracing hooks ([`trace`]), both at once ([`followed`]), or
//! a capture file ([`mod@file`]). The captures run in the kernel and are
//! driven the same way by a session ([`Source`]); a file is read as
//! `tcpdump -r` reads it.

pub mod command;
pub mod file;
pub mod followed;
pub mod live;
pub mod trace;
pub mod who;

use std::io;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use capture::Waker;

use crate::print::Line;
use crate::sink::{Counters, RecordFile, Stream};

/// A running capture, as a session drives it: announced, read in
/// batches until its readers are done, detached to stop, counted.
pub trait Source {
    type Packet;
    /// What `-w` writes this source's packets with.
    type File: RecordFile;

    /// What `-v`'s counter line says the programs ran on.
    const SEEN: &'static str;
    /// Whether text output ends with a newline when a signal stops the
    /// capture, as tcpdump's does (tracing has no tcpdump to follow).
    const NEWLINE_ON_SIGNAL: bool;

    /// Wakes the consumer from a wait for packets (from a signal).
    fn waker(&self) -> Waker;
    /// The `-w` file on `stream`, its header naming what was attached.
    fn open_file(&self, stream: Stream) -> io::Result<Self::File>;
    /// Says on stderr what the capture is attached to (tcpdump's
    /// "listening on" line), and with `-v` what the filter became.
    fn announce(&self);
    /// Called before each wait for packets (after the signal check).
    fn tick(&mut self) {}
    /// The next batch; `Disconnected` once the readers are done.
    fn recv(&self, timeout: Duration) -> Result<Vec<Self::Packet>, RecvTimeoutError>;
    /// When the packet was seen, in nanoseconds since 1970 (`-G`'s
    /// windows).
    fn time_ns(&self, p: &Self::Packet) -> u64;
    /// The packet's text line.
    fn line<'p>(&self, p: &'p Self::Packet) -> Line<'p>;
    fn write_record(&self, file: &mut Self::File, p: &Self::Packet) -> io::Result<()>;
    /// Stops the capture: the readers drain what the programs wrote.
    fn detach(&mut self);
    /// The counters, once the readers are done.
    fn stats(&self) -> Counters;
    /// Ends the capture (joining the readers) and says why it failed, if
    /// it failed on its own (an interface that disappeared).
    fn close(self) -> Option<String>;
    /// With `-- CMD`: the command's exit status, once it has exited
    /// (xcap's own then).
    fn command_status(&self) -> Option<u8> {
        None
    }
}
