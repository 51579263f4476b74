//! Parsers for the textual cBPF listings tcpdump prints.
//!
//! * `tcpdump -ddd`: a line with the instruction count, then one
//!   `code jt jf k` line per instruction, all decimal. The same numbers
//!   separated by commas instead of newlines (`4,40 0 0 12,21 0 1 2048,...`,
//!   the form `iptables -m bpf --bytecode` and `tc ... bytecode` take) are
//!   accepted too.
//! * `tcpdump -dd`: C initialisers, `{ 0x28, 0, 0, 0x0000000c },`, one per
//!   line; numbers may be hex (`0x..`) or decimal.
//!
//! Blank lines and surrounding whitespace are ignored. The parsers never
//! panic: they are meant to be fed untrusted (fuzzed) text, so every number
//! is range-checked and every error names the 1-based line it is about.

use nom::branch::alt;
use nom::bytes::complete::tag_no_case;
use nom::character::complete::{char, digit1, hex_digit1, space0, space1};
use nom::combinator::{all_consuming, opt, recognize};
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};
use thiserror::Error;

use super::Insn;

/// Why a listing could not be parsed. Displays as one line,
/// `line N: reason`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number in the input.
    pub line: usize,
    /// What was wrong, in words (never contains a newline).
    pub reason: String,
}

impl ParseError {
    fn new(line: usize, reason: impl Into<String>) -> Self {
        ParseError {
            line,
            reason: reason.into(),
        }
    }
}

/// Parses `tcpdump -ddd` output (or its comma-separated form).
pub fn parse_ddd(text: &str) -> Result<Vec<Insn>, ParseError> {
    let mut records = records(text, true);
    let Some((count_line, count_text)) = records.next() else {
        return Err(ParseError::new(
            1,
            "expected the instruction count, found end of input",
        ));
    };
    let count = match all_consuming(number).parse(count_text) {
        Ok((_, raw)) => raw.value().ok_or_else(|| {
            ParseError::new(
                count_line,
                format!("instruction count {} is out of range", raw.text),
            )
        })?,
        Err(_) => {
            return Err(ParseError::new(
                count_line,
                format!(
                    "expected the instruction count, found {}",
                    quote(count_text)
                ),
            ))
        }
    };

    let mut prog = Vec::new();
    for (line, record) in records {
        let fields = match all_consuming(ddd_fields).parse(record) {
            Ok((_, fields)) => fields,
            Err(_) => {
                return Err(ParseError::new(
                    line,
                    format!("expected 4 numbers `code jt jf k`, found {}", quote(record)),
                ))
            }
        };
        prog.push(to_insn(line, fields)?);
    }
    if count != prog.len() as u64 {
        return Err(ParseError::new(
            count_line,
            format!(
                "count line says {count} instruction{} but {} follow",
                plural(count),
                prog.len()
            ),
        ));
    }
    Ok(prog)
}

/// Parses `tcpdump -dd` output: `{ code, jt, jf, k },` per line.
pub fn parse_dd(text: &str) -> Result<Vec<Insn>, ParseError> {
    let mut prog = Vec::new();
    for (line, record) in records(text, false) {
        let fields = match all_consuming(dd_fields).parse(record) {
            Ok((_, fields)) => fields,
            Err(_) => {
                return Err(ParseError::new(
                    line,
                    format!("expected `{{ code, jt, jf, k }},`, found {}", quote(record)),
                ))
            }
        };
        prog.push(to_insn(line, fields)?);
    }
    if prog.is_empty() {
        return Err(ParseError::new(
            1,
            "expected `{ code, jt, jf, k },` lines, found none",
        ));
    }
    Ok(prog)
}

/// Parses either format: `-dd` if the first non-blank line starts with `{`,
/// `-ddd` otherwise.
pub fn parse_auto(text: &str) -> Result<Vec<Insn>, ParseError> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        Some(l) if l.starts_with('{') => parse_dd(text),
        _ => parse_ddd(text),
    }
}

/// A number as written: its digits and radix, converted later so that the
/// error can say which field overflowed.
#[derive(Clone, Copy, Debug)]
struct RawNumber<'a> {
    text: &'a str,
    digits: &'a str,
    radix: u32,
}

impl RawNumber<'_> {
    /// The value, or `None` if it does not fit 64 bits.
    fn value(&self) -> Option<u64> {
        u64::from_str_radix(self.digits, self.radix).ok()
    }
}

/// The non-blank records of the input with their 1-based line numbers;
/// with `split_commas`, a line holding commas yields one record per field.
fn records(text: &str, split_commas: bool) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().flat_map(move |(i, line)| {
        let parts: Vec<&str> = if split_commas {
            line.split(',').collect()
        } else {
            vec![line]
        };
        parts
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(move |p| (i + 1, p))
    })
}

/// `0x1f`, `0X1F` or `31`.
fn number(input: &str) -> IResult<&str, RawNumber<'_>> {
    let hex = recognize(preceded(tag_no_case("0x"), hex_digit1)).map(|t: &str| RawNumber {
        text: t,
        digits: &t[2..],
        radix: 16,
    });
    let dec = digit1.map(|t: &str| RawNumber {
        text: t,
        digits: t,
        radix: 10,
    });
    alt((hex, dec)).parse(input)
}

type Fields<'a> = [RawNumber<'a>; 4];

/// `code jt jf k`, separated by blanks.
fn ddd_fields(input: &str) -> IResult<&str, Fields<'_>> {
    let (rest, (code, _, jt, _, jf, _, k)) =
        (number, space1, number, space1, number, space1, number).parse(input)?;
    Ok((rest, [code, jt, jf, k]))
}

/// `{ code, jt, jf, k }` with an optional trailing comma.
fn dd_fields(input: &str) -> IResult<&str, Fields<'_>> {
    let comma = || delimited(space0, char(','), space0);
    let body = (number, comma(), number, comma(), number, comma(), number);
    let (rest, (_, (code, _, jt, _, jf, _, k), _, _)) = (
        (char('{'), space0),
        body,
        (space0, char('}')),
        opt(preceded(space0, char(','))),
    )
        .parse(input)?;
    Ok((rest, [code, jt, jf, k]))
}

/// Range-checks the four fields of one instruction.
fn to_insn(line: usize, [code, jt, jf, k]: Fields<'_>) -> Result<Insn, ParseError> {
    let field = |name: &str, raw: RawNumber<'_>, max: u64| {
        raw.value().filter(|&v| v <= max).ok_or_else(|| {
            let ty = match max {
                0xff => "u8",
                0xffff => "u16",
                _ => "u32",
            };
            ParseError::new(
                line,
                format!("{name} {} is out of range for {ty}", raw.text),
            )
        })
    };
    // The casts cannot truncate: each value was just checked against `max`.
    Ok(Insn {
        code: field("code", code, u16::MAX as u64)? as u16,
        jt: field("jt", jt, u8::MAX as u64)? as u8,
        jf: field("jf", jf, u8::MAX as u64)? as u8,
        k: field("k", k, u32::MAX as u64)? as u32,
    })
}

/// Quotes (and shortens) offending input for an error message; `{:?}`
/// escapes control characters, so the message stays on one line.
fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let short: String = text.chars().take(MAX_CHARS).collect();
    if short.len() < text.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DDD: &str = "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n";
    const DD: &str = "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n\
                      { 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n";

    fn expected() -> Vec<Insn> {
        vec![
            Insn::new(0x28, 0, 0, 12),
            Insn::new(0x15, 0, 1, 0x800),
            Insn::new(0x06, 0, 0, 262144),
            Insn::new(0x06, 0, 0, 0),
        ]
    }

    #[test]
    fn parses_ddd() {
        assert_eq!(parse_ddd(DDD).unwrap(), expected());
        assert_eq!(parse_auto(DDD).unwrap(), expected());
    }

    #[test]
    fn parses_ddd_comma_form_and_crlf() {
        assert_eq!(
            parse_ddd("4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0,").unwrap(),
            expected()
        );
        assert_eq!(parse_ddd(&DDD.replace('\n', "\r\n")).unwrap(), expected());
    }

    #[test]
    fn parses_dd() {
        assert_eq!(parse_dd(DD).unwrap(), expected());
        assert_eq!(parse_auto(DD).unwrap(), expected());
        // Decimal, odd spacing, no trailing comma.
        assert_eq!(
            parse_dd("{40,0,0,12}\n  {0x15 , 0 , 1 , 2048} ,").unwrap(),
            expected()[..2]
        );
    }

    #[test]
    fn count_mismatch_names_the_count_line() {
        let err = parse_ddd("\n5\n40 0 0 12\n6 0 0 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: count line says 5 instructions but 2 follow"
        );
    }

    #[test]
    fn bad_line() {
        let err = parse_ddd("2\n40 0 0 12\n6 0 x 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: expected 4 numbers `code jt jf k`, found \"6 0 x 0\""
        );
        let err = parse_ddd("2\n40 0 0\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_dd("{ 0x28, 0, 0 },").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: expected `{ code, jt, jf, k },`, found \"{ 0x28, 0, 0 },\""
        );
    }

    #[test]
    fn out_of_range() {
        let msg = |t: &str| parse_auto(t).unwrap_err().to_string();
        assert_eq!(
            msg("1\n65536 0 0 0"),
            "line 2: code 65536 is out of range for u16"
        );
        assert_eq!(msg("1\n6 256 0 0"), "line 2: jt 256 is out of range for u8");
        assert_eq!(
            msg("{ 6, 0, 0x100, 0 }"),
            "line 1: jf 0x100 is out of range for u8"
        );
        assert_eq!(
            msg("1\n6 0 0 4294967296"),
            "line 2: k 4294967296 is out of range for u32"
        );
        assert_eq!(
            msg("1\n6 0 0 99999999999999999999999999"),
            "line 2: k 99999999999999999999999999 is out of range for u32"
        );
        assert_eq!(
            msg("99999999999999999999999999\n"),
            "line 1: instruction count 99999999999999999999999999 is out of range"
        );
    }

    #[test]
    fn empty_and_garbage_inputs_are_errors() {
        for text in [
            "",
            "\n\n",
            "  ",
            "{",
            "}",
            "0x",
            "-1\n",
            "1\n-6 0 0 0",
            "{ 1, 2, 3, 4 }}",
        ] {
            let err = parse_auto(text).unwrap_err();
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        assert_eq!(parse_ddd("0\n").unwrap(), vec![]);
    }

    #[test]
    fn long_garbage_is_shortened_and_kept_on_one_line() {
        let text = format!("1\n{}\r\u{7}", "z".repeat(500));
        let err = parse_ddd(&text).unwrap_err().to_string();
        assert!(
            err.len() < 120 && !err.contains('\n') && !err.contains('\u{7}'),
            "{err}"
        );
    }

    /// A poor man's fuzzer: mutations of valid listings never panic and
    /// every error stays on one line.
    #[test]
    fn mutations_never_panic() {
        let alphabet = [
            '0', '1', '9', 'x', 'f', ' ', '\t', ',', '{', '}', '\n', '\r', '-', 'é', '\0',
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for base in [DDD, DD] {
            for _ in 0..5000 {
                let mut chars: Vec<char> = base.chars().collect();
                for _ in 0..1 + next(4) {
                    let at = next(chars.len() + 1);
                    match next(3) {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 if at < chars.len() => chars[at] = alphabet[next(alphabet.len())],
                        _ => chars.insert(at, alphabet[next(alphabet.len())]),
                    }
                }
                let text: String = chars.into_iter().collect();
                if let Err(e) = parse_auto(&text) {
                    assert!(!e.to_string().contains('\n'), "{e}");
                }
            }
        }
    }

    #[test]
    fn dump_round_trips() {
        let prog = expected();
        assert_eq!(
            parse_ddd(&super::super::dump::dump_ddd(&prog)).unwrap(),
            prog
        );
        assert_eq!(parse_dd(&super::super::dump::dump_dd(&prog)).unwrap(), prog);
    }
}
