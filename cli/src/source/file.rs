//! A capture file (`-r FILE`), read by libpcap as tcpdump reads it
//! (micro-second timestamps, the file's link type and snap length), its
//! packets filtered by the chosen engine ([`crate::engine`]). The
//! expression is compiled as tcpdump compiles it for a file (netmask 0,
//! on the file's own handle) and translated with offline semantics.

use std::ffi::c_void;

use anyhow::{anyhow, bail, Result};
use cbpf2ebpf::cbpf::Insn;
use cbpf2ebpf::libpcap;
use pcap::{Capture, Offline, Packet, Savefile};

use crate::engine::Runner;
use crate::filter::Filter;
use crate::link::Link;
use crate::plan::ReadFile;
use crate::print::Line;

/// An open capture file.
pub struct Input {
    path: String,
    capture: Capture<Offline>,
}

impl Input {
    /// Opens `path` as tcpdump does (micro-second timestamps) and says so
    /// on stderr in tcpdump's words.
    pub fn open(path: &str) -> Result<Self> {
        let capture = Capture::from_file(path).map_err(|e| anyhow!("{}", pcap_message(&e)))?;
        let linktype = capture.get_datalink().0;
        // SAFETY: a valid, open pcap_t owned by `capture`.
        let snaplen = unsafe { libpcap::snapshot(capture.as_ptr().cast::<c_void>()) };
        let lt = pcap::Linktype(linktype);
        let lt_text = match (lt.get_name(), lt.get_description()) {
            (Ok(name), Ok(desc)) => format!("{name} ({desc})"),
            _ => linktype.to_string(),
        };
        eprintln!("reading from file {path}, link-type {lt_text}, snapshot length {snaplen}");
        Ok(Input {
            path: path.to_string(),
            capture,
        })
    }

    /// The filter's program: a raw one as it is, an expression compiled
    /// for this file.
    pub fn program(&self, filter: &Filter) -> Result<Vec<Insn>> {
        match filter {
            Filter::Expression(e) => self.compile_on_savefile(e),
            Filter::Raw(prog) => Ok(prog.clone()),
        }
    }

    /// Compiles `expr` on this very handle, as tcpdump does (optimised,
    /// netmask 0). A savefile handle is not a dead handle: libpcap refuses
    /// `inbound`, `outbound` and `ifindex` on it ("not supported ... when
    /// reading savefiles") where a dead handle emits ancillary loads.
    fn compile_on_savefile(&self, expr: &str) -> Result<Vec<Insn>> {
        // tcpdump passes a C string: it ends at the first NUL.
        let expr = expr.split('\0').next().unwrap_or_default();
        let handle = self.capture.as_ptr().cast::<c_void>();
        // SAFETY: `handle` is open for the lifetime of `self`.
        unsafe { libpcap::compile_on(handle, expr, true, 0) }.map_err(|e| anyhow!("{e}"))
    }
}

/// A file being filtered.
pub struct FileSource {
    input: Input,
    runner: Runner,
    /// The first read error; the packets before it were handed over.
    read_error: Option<String>,
}

impl FileSource {
    /// Opens the file (saying so on stderr), compiles the filter for it
    /// and readies the engine.
    pub fn open(plan: &ReadFile) -> Result<Self> {
        let input = Input::open(&plan.path)?;
        let prog = input.program(&plan.filter)?;
        let runner = Runner::new(plan.engine, &plan.translation, &prog)?;
        Ok(FileSource {
            input,
            runner,
            read_error: None,
        })
    }

    /// A savefile at `path` as `tcpdump -r -w` writes it: libpcap's,
    /// with the input's link type and snap length.
    pub fn savefile(&self, path: &str) -> Result<Savefile> {
        self.input
            .capture
            .savefile(path)
            .map_err(|e| anyhow!("{}", pcap_message(&e)))
    }

    /// How the printer reads this file's packets.
    pub fn link(&self) -> Link {
        Link::from_dlt(self.input.capture.get_datalink().0)
    }

    /// Hands each packet the filter matches to `put`, up to `count`, until
    /// the end of the file or a read error (kept for [`finish`](Self::finish)).
    /// An error of the engine or of `put` ends it at once.
    pub fn each_match(
        &mut self,
        count: Option<u64>,
        mut put: impl FnMut(&Packet) -> Result<()>,
    ) -> Result<()> {
        let mut matched = 0u64;
        while count.is_none_or(|c| matched < c) {
            let packet = match self.input.capture.next_packet() {
                Ok(p) => p,
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => {
                    self.read_error = Some(pcap_message(&e));
                    break;
                }
            };
            if self.runner.run(packet.data, packet.header.len)? != 0 {
                matched += 1;
                put(&packet)?;
            }
        }
        Ok(())
    }

    /// Says what the engine had to say, then fails on a read error.
    pub fn finish(self) -> Result<()> {
        self.runner.report();
        if let Some(msg) = self.read_error {
            bail!("{}: {msg}", self.input.path);
        }
        Ok(())
    }
}

/// A packet of the file as its line shows it.
pub fn line<'p>(link: Link, packet: &Packet<'p>) -> Line<'p> {
    let h = packet.header;
    // time_t and suseconds_t are i64 here, not everywhere.
    #[allow(clippy::unnecessary_cast)]
    let (secs, usecs) = (h.ts.tv_sec as i64, h.ts.tv_usec as i64);
    let mut line = Line::new(secs, usecs, link, packet.data, h.len);
    if link == Link::LinuxSll2 && packet.data.len() >= 20 {
        line.before = cooked_interface(packet.data);
    }
    line
}

/// What tcpdump prints first on a Linux cooked v2 packet: the name of its
/// interface on this host (`?` where no interface has its index) and its
/// packet type (`In`, `B`, `M`, `P`, `Out`).
fn cooked_interface(data: &[u8]) -> String {
    let ifindex = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has the IF_NAMESIZE bytes if_indextoname may write.
    let named = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    let name = match named.is_null() {
        true => "?".to_string(),
        // SAFETY: on success buf holds a NUL-terminated name.
        false => unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    };
    let kind = match data[10] {
        0 => "In",
        1 => "B",
        2 => "M",
        3 => "P",
        4 => "Out",
        _ => "?",
    };
    format!("{name:<5} {kind:<3} ")
}

/// libpcap's own message for a `pcap` crate error.
pub fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(msg) => msg.clone(),
        other => other.to_string(),
    }
}
