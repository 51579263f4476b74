//! Where packets go (`-w`, or lines printed with tcpdump's printing
//! flags), for captures and file reads alike.

use anyhow::{bail, Result};

use crate::args::{PrintArgs, RotationArgs, RunArgs};
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
        /// `-C`, `-G`, `-W`, `-z`: a new file now and then.
        rotation: Option<Rotation>,
    },
}

/// When a `-w` file is closed and the next one started, and what runs on
/// the closed one: tcpdump's `-C`, `-G`, `-W` and `-z`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// `-C`, in bytes: a new file before a packet when the file is larger.
    pub size: Option<u64>,
    /// `-G`: a new file in each window of this many seconds of local time.
    pub seconds: Option<u64>,
    /// `-W`: the ring's size with `-C`, the number of files with `-G` alone.
    pub files: Option<u32>,
    /// `-z`: run with each closed file's name.
    pub post_command: Option<String>,
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

/// `-w`, or lines printed with the printing flags; refuses rotation
/// without a file to rotate.
pub(super) fn output(args: &RunArgs) -> Result<Output> {
    let rotation = rotation(&args.rotation)?;
    match &args.write {
        None if rotation.is_some() => bail!("-C, -G, -W and -z rotate -w files: give -w FILE"),
        None => Ok(Output::Text(style(&args.print, args.live.quiet))),
        Some(path) if path == "-" && rotation.is_some() => {
            bail!("-C, -G, -W and -z rotate files: -w - writes to stdout")
        }
        Some(path) => Ok(Output::File {
            path: path.clone(),
            pcapng: args.live.pcapng || path.ends_with(".pcapng"),
            rotation,
        }),
    }
}

/// `-C`, `-G`, `-W`, `-z`, checked with tcpdump's messages; `-W` and `-z`
/// mean nothing without `-C` or `-G` (tcpdump ignores them).
fn rotation(args: &RotationArgs) -> Result<Option<Rotation>> {
    let size = match &args.file_size {
        None => None,
        Some(text) => Some(million_bytes(text)?),
    };
    let seconds = match &args.rotate_seconds {
        None => None,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => bail!("invalid number of seconds {text}"),
        },
    };
    let files = match &args.file_count {
        None => None,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n > 0 && n <= i32::MAX as u32 => Some(n),
            _ => bail!("invalid number of output files {text}"),
        },
    };
    let post_command = args.post_rotate.clone();
    if size.is_none() && seconds.is_none() {
        if files.is_some() {
            bail!("-W needs -C or -G: it counts the files they start");
        }
        if post_command.is_some() {
            bail!("-z needs -C or -G: it runs on the files they close");
        }
        return Ok(None);
    }
    if post_command.as_deref() == Some("") {
        bail!("-z needs a command");
    }
    Ok(Some(Rotation {
        size,
        seconds,
        files,
        post_command,
    }))
}

/// `-C SIZE`: millions of bytes, a positive whole number, as tcpdump.
fn million_bytes(text: &str) -> Result<u64> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => match n.checked_mul(1_000_000) {
            Some(bytes) if bytes <= i64::MAX as u64 => Ok(bytes),
            _ => bail!("-C {text}: file size too large"),
        },
        _ => bail!("invalid file size {text}"),
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
