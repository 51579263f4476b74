//! The filter: expression words, `-F FILE`, or a raw cBPF listing
//! (`--raw-cbpf FILE`).

use std::io::Read;

use anyhow::{Context, Result};
use cbpf2ebpf::cbpf::{parse, Insn};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// A tcpdump expression, compiled per link type.
    Expression(String),
    /// A ready program; the link type does not matter.
    Raw(Vec<Insn>),
}

impl Filter {
    /// The filter from `--raw-cbpf FILE`, else from `-F FILE`, else from
    /// the expression words ('-' reads stdin).
    pub fn read(
        raw_cbpf: Option<&str>,
        filter_file: Option<&str>,
        words: &[String],
    ) -> Result<Self> {
        if let Some(path) = raw_cbpf {
            let text = read_input(path)?;
            let prog = parse::parse_auto(&String::from_utf8_lossy(&text))
                .with_context(|| format!("{path}: bad raw cBPF"))?;
            return Ok(Filter::Raw(prog));
        }
        if let Some(path) = filter_file {
            let text = read_input(path)?;
            return Ok(Filter::Expression(strip_comments(&text)));
        }
        // tcpdump's copy_argv(): the words joined by single spaces.
        Ok(Filter::Expression(words.join(" ")))
    }
}

/// The bytes of `path` (`-`: stdin), with tcpdump's error text.
fn read_input(path: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let result = if path == "-" {
        std::io::stdin().lock().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf).map(|_| ()))
    };
    result
        .map_err(crate::out::IoError)
        .with_context(|| format!("can't open {path}"))?;
    Ok(buf)
}

/// tcpdump's `read_infile()`: the text up to the first NUL, with every `#`
/// up to the end of its line replaced by blanks.
fn strip_comments(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut text = bytes[..end].to_vec();
    let mut in_comment = false;
    for b in &mut text {
        if *b == b'#' {
            in_comment = true;
        } else if *b == b'\n' {
            in_comment = false;
        }
        if in_comment {
            *b = b' ';
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::strip_comments;

    #[test]
    fn comments_become_blanks() {
        assert_eq!(strip_comments(b"tcp # x\nport 80#y"), "tcp    \nport 80  ");
        assert_eq!(strip_comments(b"ip\0 junk"), "ip");
    }
}
