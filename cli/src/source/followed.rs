//! One packet followed across hooks: an interface hook (`--tc` or `--xdp`
//! on `-i IFACE`) and tracing hooks (`--trace`, `--fentry`, `--fexit`) in
//! one run. The two captures are started as each runs alone (the tracing
//! hooks first: their names are the likelier mistake) and read in turns.
//! Their readers hand packets over late by up to their poll interval, so
//! packets are held that long and then go out in time order: one
//! packet's lines read from hook to hook.
//!
//! A packet carries the same id at every hook it passes while its skb
//! lives: the skb's address, which the TC program's context is and the
//! tracing hooks record (XDP, before any skb, gives ids of its own). Lines
//! name the hook and end with the id; `-w` writes one pcapng file with the
//! interface blocks of both captures and the id as `epb_packetid`, so one
//! packet's path, drop included, can be picked out of it
//! (`frame.packet_id` in tshark).

use std::cell::RefCell;
use std::io;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use capture::trace::{TraceConfig, TracePacket};
use capture::{pcapng, savefile, trace, Config, Packet, Waker};

use crate::plan;
use crate::print::Line;
use crate::sink::{Counters, RecordFile, Stream};
use crate::source::live::Live;
use crate::source::trace::Trace;
use crate::source::Source;

/// How long each capture is waited on in its turn: a packet waits at most
/// two turns for its batch.
const TURN: Duration = Duration::from_millis(20);

/// The two captures, attached.
pub struct Followed {
    live: Live,
    trace: Trace,
    snaplen: u32,
    filter: String,
    /// Packets read, not yet handed over ([`Followed::ripe`]).
    held: RefCell<Vec<Seen>>,
    /// How long a packet is held: as late as a reader may hand it over.
    hold: Duration,
}

/// A packet from either capture.
pub enum Seen {
    Live(Packet),
    Trace(TracePacket),
}

impl Seen {
    fn ts_ns(&self) -> u64 {
        match self {
            Seen::Live(p) => p.ts_ns,
            Seen::Trace(p) => p.ts_ns,
        }
    }
}

impl Followed {
    /// Starts the tracing hooks, then the interface hooks; on an error
    /// what started is dropped, which detaches it.
    pub fn start(live: &Config, trace: &TraceConfig, plan: &plan::Capture) -> Result<Followed> {
        let trace = Trace::start(trace, plan)?;
        let live = Live::start(live, plan)?;
        let poll = Duration::from_millis(plan.buffers.poll_ms.max(0) as u64);
        Ok(Followed {
            live,
            trace,
            snaplen: plan.snaplen,
            filter: plan.filter.clone(),
            held: RefCell::new(Vec::new()),
            hold: poll + 3 * TURN,
        })
    }

    /// The held packets older than the hold (all of them once both
    /// captures are done), in time order.
    fn ripe(&self, all: bool) -> Vec<Seen> {
        let mut held = self.held.borrow_mut();
        held.sort_by_key(Seen::ts_ns);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let until = now.saturating_sub(self.hold).as_nanos() as u64;
        let n = match all {
            true => held.len(),
            false => held.partition_point(|p| p.ts_ns() <= until),
        };
        held.drain(..n).collect()
    }
}

/// What a record's interface block is, in a file of both captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Live(savefile::InterfaceKey),
    Trace(trace::InterfaceKey),
}

/// The pcapng file of a followed capture: the interface hooks' blocks,
/// then the tracing hooks'; an interface that appears (`-i any`) gets its
/// block before its first packet.
pub struct FollowedFile {
    file: pcapng::Writer<Stream, Block>,
    snaplen: u32,
    filter: String,
}

impl RecordFile for FollowedFile {
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// One capture's turn: its batch, or whether it is done.
fn take<P>(
    got: Result<Vec<P>, RecvTimeoutError>,
    into: &mut Vec<Seen>,
    seen: impl Fn(P) -> Seen,
) -> bool {
    match got {
        Ok(batch) => {
            into.extend(batch.into_iter().map(seen));
            false
        }
        Err(RecvTimeoutError::Timeout) => false,
        Err(RecvTimeoutError::Disconnected) => true,
    }
}

impl Source for Followed {
    type Packet = Seen;
    type File = FollowedFile;

    const SEEN: &'static str = "packets and skbs";
    const NEWLINE_ON_SIGNAL: bool = false;

    /// A signal wakes the interface capture's wait; the tracing one's
    /// lasts a turn at most.
    fn waker(&self) -> Waker {
        self.live.waker()
    }

    fn open_file(&self, stream: Stream) -> io::Result<FollowedFile> {
        let mut file = pcapng::Writer::new(stream)?;
        for d in self.live.interface_descs() {
            file.add_interface(Block::Live(d.key()), &d.block(self.snaplen, &self.filter))?;
        }
        trace::add_interfaces(
            &mut file,
            self.trace.hooks(),
            self.snaplen,
            &self.filter,
            Block::Trace,
        )?;
        Ok(FollowedFile {
            file,
            snaplen: self.snaplen,
            filter: self.filter.clone(),
        })
    }

    fn announce(&self) {
        self.trace.announce();
        self.live.announce();
    }

    /// When the interface went away, the tracing hooks stop too.
    fn tick(&mut self) {
        self.live.tick();
        self.trace.tick();
        if self.live.vanished() {
            self.trace.detach();
        }
    }

    /// A turn of each capture, then the packets held long enough;
    /// `Timeout` when none are, so that the session looks at its signals
    /// between turns; `Disconnected` once both captures are done and
    /// nothing is held.
    fn recv(&self, timeout: Duration) -> Result<Vec<Seen>, RecvTimeoutError> {
        let turn = timeout.min(TURN);
        let mut held = std::mem::take(&mut *self.held.borrow_mut());
        let live_done = take(self.live.recv(turn), &mut held, Seen::Live);
        let trace_done = take(self.trace.recv(turn), &mut held, Seen::Trace);
        *self.held.borrow_mut() = held;
        let done = live_done && trace_done;
        let ripe = self.ripe(done);
        match ripe.is_empty() {
            true if done => Err(RecvTimeoutError::Disconnected),
            true => Err(RecvTimeoutError::Timeout),
            false => Ok(ripe),
        }
    }

    fn time_ns(&self, p: &Seen) -> u64 {
        p.ts_ns()
    }

    fn line<'p>(&self, p: &'p Seen) -> Line<'p> {
        match p {
            Seen::Live(p) => self.live.line(p),
            Seen::Trace(p) => self.trace.line(p),
        }
    }

    fn write_record(&self, file: &mut FollowedFile, p: &Seen) -> io::Result<()> {
        match p {
            Seen::Live(p) => {
                let key = Block::Live(p.interface_key());
                if !file.file.knows(&key) {
                    for d in self.live.descs_of_new(p.ifindex) {
                        let block = d.block(file.snaplen, &file.filter);
                        file.file.add_interface(Block::Live(d.key()), &block)?;
                    }
                }
                let comment = self.live.comment(p);
                savefile::write_pcapng(&mut file.file, &key, p, comment.as_deref())
            }
            Seen::Trace(p) => {
                let key = Block::Trace(p.interface_key());
                trace::write_pcapng(&mut file.file, &key, p, &self.trace.comment(p))
            }
        }
    }

    fn detach(&mut self) {
        self.live.detach();
        self.trace.detach();
    }

    /// Each capture's counters, added: their packets are distinct records.
    fn stats(&self) -> Counters {
        self.live.stats() + self.trace.stats()
    }

    fn close(self) -> Option<String> {
        let Followed { live, trace, .. } = self;
        let trace_failure = trace.close();
        live.close().or(trace_failure)
    }
}
