//! Printers byte-identical to libpcap 1.10.3's `bpf_dump()` (what
//! `tcpdump -d`, `-dd` and `-ddd` print) and `bpf_image()`.
//!
//! libpcap formats with C `printf`, and a few of its quirks show in the
//! output, reproduced here on purpose:
//! * `k` is printed with `%d` in many places, so values of 2^31 and above
//!   come out negative (`ld [-4096]`, `add #-1`);
//! * a `ja` target is `n + 1 + k` computed in 32-bit unsigned arithmetic and
//!   printed signed, so a backward `ja` (k = 0xfffffff1) shows its real
//!   (earlier) target;
//! * instructions without an operand keep the padding after the mnemonic
//!   (`"(016) tax      "`, with trailing blanks);
//! * ancillary loads at `SKF_AD_OFF + n` print symbolically (`[type]`) when
//!   libpcap knows `n`, as it does when built on Linux.

use std::fmt::Write as _;

use super::op::*;
use super::{ancillary, Insn};

/// `tcpdump -d`: one [`image`] line per instruction, each ending in `\n`.
pub fn dump_d(prog: &[Insn]) -> String {
    let mut out = String::new();
    for (n, insn) in prog.iter().enumerate() {
        out.push_str(&image(insn, n));
        out.push('\n');
    }
    out
}

/// `tcpdump -dd`: C initialisers, `{ 0x28, 0, 0, 0x0000000c },`.
pub fn dump_dd(prog: &[Insn]) -> String {
    let mut out = String::new();
    for i in prog {
        // `let _`: writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{{ 0x{:x}, {}, {}, 0x{:08x} }},",
            i.code, i.jt, i.jf, i.k
        );
    }
    out
}

/// `tcpdump -ddd`: the instruction count, then `code jt jf k` in decimal.
pub fn dump_ddd(prog: &[Insn]) -> String {
    let mut out = format!("{}\n", prog.len());
    for i in prog {
        let _ = writeln!(out, "{} {} {} {}", i.code, i.jt, i.jf, i.k);
    }
    out
}

/// One line of `tcpdump -d` for instruction `n`, without the newline:
/// libpcap's `bpf_image(insn, n)`.
pub fn image(insn: &Insn, n: usize) -> String {
    // C's `%d` of an unsigned 32-bit value.
    let signed = |v: u32| v as i32;
    let k = insn.k;
    let (mnemonic, operand): (&str, String) = match insn.code {
        c if c == RET | K => ("ret", format!("#{}", signed(k))),
        c if c == RET | A => ("ret", String::new()),
        c if c == LD | W | ABS => ("ld", abs_operand(k)),
        c if c == LD | H | ABS => ("ldh", abs_operand(k)),
        c if c == LD | B | ABS => ("ldb", abs_operand(k)),
        c if c == LD | W | LEN => ("ld", "#pktlen".into()),
        c if c == LD | W | IND => ("ld", format!("[x + {}]", signed(k))),
        c if c == LD | H | IND => ("ldh", format!("[x + {}]", signed(k))),
        c if c == LD | B | IND => ("ldb", format!("[x + {}]", signed(k))),
        c if c == LD | IMM => ("ld", format!("#0x{k:x}")),
        c if c == LDX | IMM => ("ldx", format!("#0x{k:x}")),
        c if c == LDX | MSH | B => ("ldxb", format!("4*([{}]&0xf)", signed(k))),
        c if c == LD | MEM => ("ld", format!("M[{}]", signed(k))),
        c if c == LDX | MEM => ("ldx", format!("M[{}]", signed(k))),
        c if c == ST => ("st", format!("M[{}]", signed(k))),
        c if c == STX => ("stx", format!("M[{}]", signed(k))),
        // `n + 1 + k` in C: int + unsigned, so unsigned 32-bit wrap-around,
        // then printed with `%d`.
        c if c == JMP | JA => (
            "ja",
            signed((n as u32).wrapping_add(1).wrapping_add(k)).to_string(),
        ),
        c if c == JMP | JGT | K => ("jgt", format!("#0x{k:x}")),
        c if c == JMP | JGE | K => ("jge", format!("#0x{k:x}")),
        c if c == JMP | JEQ | K => ("jeq", format!("#0x{k:x}")),
        c if c == JMP | JSET | K => ("jset", format!("#0x{k:x}")),
        c if c == JMP | JGT | X => ("jgt", "x".into()),
        c if c == JMP | JGE | X => ("jge", "x".into()),
        c if c == JMP | JEQ | X => ("jeq", "x".into()),
        c if c == JMP | JSET | X => ("jset", "x".into()),
        c if c & 0x07 == ALU => match alu_image(c, k) {
            Some(image) => image,
            None => unimplemented_image(c),
        },
        c if c == MISC | TAX => ("tax", String::new()),
        c if c == MISC | TXA => ("txa", String::new()),
        c => unimplemented_image(c),
    };
    let is_conditional_jump = insn.class() == JMP && insn.op() != JA;
    if is_conditional_jump {
        // `n + 1 + jt` is int arithmetic in C: no wrap-around possible here.
        format!(
            "({n:03}) {mnemonic:<8} {operand:<16} jt {}\tjf {}",
            n + 1 + insn.jt as usize,
            n + 1 + insn.jf as usize
        )
    } else {
        format!("({n:03}) {mnemonic:<8} {operand}")
    }
}

/// ALU instructions: mnemonic and operand, or `None` for an opcode libpcap
/// does not know.
fn alu_image(code: u16, k: u32) -> Option<(&'static str, String)> {
    let mnemonic = match code & 0xf0 {
        ADD => "add",
        SUB => "sub",
        MUL => "mul",
        DIV => "div",
        MOD => "mod",
        AND => "and",
        OR => "or",
        XOR => "xor",
        LSH => "lsh",
        RSH => "rsh",
        NEG if code == ALU | NEG => return Some(("neg", String::new())),
        _ => return None,
    };
    let operand = match code & !0xf0 {
        c if c == ALU | X => "x".to_string(),
        // libpcap prints bit masks in hex, arithmetic operands signed.
        c if c == ALU | K && matches!(code & 0xf0, AND | OR | XOR) => format!("#0x{k:x}"),
        c if c == ALU | K => format!("#{}", k as i32),
        _ => return None,
    };
    Some((mnemonic, operand))
}

fn unimplemented_image(code: u16) -> (&'static str, String) {
    ("unimp", format!("0x{code:x}"))
}

/// The operand of an absolute load: `[12]`, or `[type]` for a Linux
/// ancillary offset libpcap names.
fn abs_operand(k: u32) -> String {
    match k.checked_sub(ancillary::OFF).and_then(ancillary_symbol) {
        Some(symbol) => format!("[{symbol}]"),
        None => format!("[{}]", k as i32),
    }
}

/// libpcap's names for `SKF_AD_*` offsets (its `offsets[]` table); offsets
/// between them (not multiples of 4) have none.
fn ancillary_symbol(ad: u32) -> Option<&'static str> {
    use ancillary::*;
    Some(match ad {
        PROTOCOL => "proto",
        PKTTYPE => "type",
        IFINDEX => "ifidx",
        NLATTR => "nla",
        NLATTR_NEST => "nlan",
        MARK => "mark",
        QUEUE => "queue",
        HATYPE => "hatype",
        RXHASH => "rxhash",
        CPU => "cpu",
        ALU_XOR_X => "xor_x",
        VLAN_TAG => "vlan_tci",
        VLAN_TAG_PRESENT => "vlanp",
        PAY_OFFSET => "poff",
        RANDOM => "random",
        VLAN_TPID => "vlan_tpid",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tcpdump -d -y EN10MB 'ip'` with libpcap 1.10.3.
    #[test]
    fn dump_d_matches_tcpdump_for_ip() {
        let prog = [
            Insn::new(0x28, 0, 0, 12),
            Insn::new(0x15, 0, 1, 0x800),
            Insn::new(0x06, 0, 0, 262144),
            Insn::new(0x06, 0, 0, 0),
        ];
        assert_eq!(
            dump_d(&prog),
            "(000) ldh      [12]\n\
             (001) jeq      #0x800           jt 2\tjf 3\n\
             (002) ret      #262144\n\
             (003) ret      #0\n"
        );
        assert_eq!(
            dump_dd(&prog),
            "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n\
             { 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n"
        );
        assert_eq!(
            dump_ddd(&prog),
            "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"
        );
    }

    #[test]
    fn quirks() {
        // Backward ja, as in `ip6 protochain`.
        assert_eq!(
            image(&Insn::new(JMP | JA, 0, 0, 0xffff_fff1), 18),
            "(018) ja       4"
        );
        // Operand-less instructions keep their padding.
        assert_eq!(
            image(&Insn::new(MISC | TAX, 0, 0, 0), 16),
            "(016) tax      "
        );
        assert_eq!(
            image(&Insn::new(LD | H | ABS, 0, 0, 0xffff_f004), 0),
            "(000) ldh      [type]"
        );
        assert_eq!(
            image(&Insn::new(LD | W | ABS, 0, 0, 0xffff_f002), 0),
            "(000) ld       [-4094]"
        );
        assert_eq!(
            image(&Insn::new(ALU | ADD | K, 0, 0, u32::MAX), 1),
            "(001) add      #-1"
        );
        assert_eq!(
            image(&Insn::new(ALU | AND | K, 0, 0, u32::MAX), 1),
            "(001) and      #0xffffffff"
        );
        assert_eq!(
            image(&Insn::new(0xffff, 0, 0, 0), 1234),
            "(1234) unimp    0xffff"
        );
    }
}
