//! Where packets go (`-w`, or lines printed with tcpdump's printing
//! flags), for captures and file reads alike.

use crate::args::{PrintArgs, RunArgs};
use crate::print::{Dump, DumpKind, Stamps, Style};

/// Where packets go.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// One line each on stdout.
    Text(Style),
    /// `-w PATH` ('-' for stdout).
    File {
        path: String,
        /// `--pcapng` or a `.pcapng` name (live capture; tracing always
        /// writes pcapng, `-r` what libpcap writes).
        pcapng: bool,
    },
}

impl Output {
    /// The file's name, for error messages.
    pub fn path(&self) -> Option<&str> {
        match self {
            Output::Text(_) => None,
            Output::File { path, .. } => Some(path),
        }
    }
}

/// `-w`, or lines printed with the printing flags.
pub(super) fn output(args: &RunArgs) -> Output {
    match &args.write {
        None => Output::Text(style(&args.print, args.live.quiet)),
        Some(path) => Output::File {
            path: path.clone(),
            pcapng: args.live.pcapng || path.ends_with(".pcapng"),
        },
    }
}

fn style(p: &PrintArgs, quiet: bool) -> Style {
    let stamps = match p.time {
        0 => Stamps::LocalTime,
        1 => Stamps::None,
        2 => Stamps::Epoch,
        3 => Stamps::SincePrevious,
        4 => Stamps::DateTime,
        _ => Stamps::SinceFirst,
    };
    Style {
        stamps,
        link_header: p.link_header,
        dump: dump(p),
        quiet,
    }
}

/// One dump: `-X` over `-x` over `-A`, as tcpdump.
fn dump(p: &PrintArgs) -> Option<Dump> {
    let (kind, times) = if p.hex_ascii > 0 {
        (DumpKind::HexAscii, p.hex_ascii)
    } else if p.hex > 0 {
        (DumpKind::Hex, p.hex)
    } else if p.ascii > 0 {
        (DumpKind::Ascii, p.ascii)
    } else {
        return None;
    };
    Some(Dump {
        kind,
        from_link_header: times > 1,
    })
}
