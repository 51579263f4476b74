//! Classic BPF: the instruction format libpcap emits, with text parsers for
//! tcpdump's `-ddd`/`-dd` output and printers for `-d`/`-dd`/`-ddd`.

pub mod dump;
pub mod parse;

/// One classic BPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Insn { code, jt, jf, k }
    }
    pub const fn class(&self) -> u16 {
        self.code & 0x07
    }
    pub const fn size(&self) -> u16 {
        self.code & 0x18
    }
    pub const fn mode(&self) -> u16 {
        self.code & 0xe0
    }
    pub const fn op(&self) -> u16 {
        self.code & 0xf0
    }
    pub const fn src(&self) -> u16 {
        self.code & 0x08
    }
    pub const fn rval(&self) -> u16 {
        self.code & 0x18
    }
    pub const fn miscop(&self) -> u16 {
        self.code & 0xf8
    }
}

/// Opcode fields, as in `<pcap/bpf.h>`.
pub mod op {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;

    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;

    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;

    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;

    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;

    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
    pub const A: u16 = 0x10;

    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;

    /// Scratch memory words (`BPF_MEMWORDS`).
    pub const MEMWORDS: u32 = 16;
    /// Largest program libpcap and the kernel accept (`BPF_MAXINSNS`).
    pub const MAXINSNS: usize = 4096;
}

/// Linux ancillary-data offsets (`SKF_AD_*`, added to `SKF_AD_OFF`).
pub mod ancillary {
    pub const OFF: u32 = 0xffff_f000;
    pub const PROTOCOL: u32 = 0;
    pub const PKTTYPE: u32 = 4;
    pub const IFINDEX: u32 = 8;
    pub const NLATTR: u32 = 12;
    pub const NLATTR_NEST: u32 = 16;
    pub const MARK: u32 = 20;
    pub const QUEUE: u32 = 24;
    pub const HATYPE: u32 = 28;
    pub const RXHASH: u32 = 32;
    pub const CPU: u32 = 36;
    pub const ALU_XOR_X: u32 = 40;
    pub const VLAN_TAG: u32 = 44;
    pub const VLAN_TAG_PRESENT: u32 = 48;
    pub const PAY_OFFSET: u32 = 52;
    pub const RANDOM: u32 = 56;
    pub const VLAN_TPID: u32 = 60;
    pub const MAX: u32 = 64;

    /// The tcpdump primitive (or kernel name) behind an ancillary offset,
    /// for error messages.
    pub fn name(ad: u32) -> &'static str {
        match ad {
            PROTOCOL => "SKF_AD_PROTOCOL",
            PKTTYPE => "inbound/outbound (SKF_AD_PKTTYPE)",
            IFINDEX => "ifindex (SKF_AD_IFINDEX)",
            NLATTR => "SKF_AD_NLATTR",
            NLATTR_NEST => "SKF_AD_NLATTR_NEST",
            MARK => "SKF_AD_MARK",
            QUEUE => "SKF_AD_QUEUE",
            HATYPE => "SKF_AD_HATYPE",
            RXHASH => "SKF_AD_RXHASH",
            CPU => "SKF_AD_CPU",
            ALU_XOR_X => "SKF_AD_ALU_XOR_X",
            VLAN_TAG => "vlan (SKF_AD_VLAN_TAG)",
            VLAN_TAG_PRESENT => "vlan (SKF_AD_VLAN_TAG_PRESENT)",
            PAY_OFFSET => "SKF_AD_PAY_OFFSET",
            RANDOM => "SKF_AD_RANDOM",
            VLAN_TPID => "vlan (SKF_AD_VLAN_TPID)",
            _ => "unknown SKF_AD offset",
        }
    }
}
