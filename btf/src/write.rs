//! The writer: a small `.BTF` and `.BTF.ext`: the few types a filter object needs
//! (integers, `void *`, forward-declared context structs, function
//! prototypes and functions), and func_info / line_info records.
//!
//! Layouts follow `include/uapi/linux/btf.h` and libbpf's `btf_ext_header`;
//! in an ELF object every `.BTF.ext` record's `insn_off` is a byte offset
//! in the section its block names.

use crate::{Kind, TypeId, MAGIC, VERSION};

/// `BTF_INT_SIGNED`.
const INT_SIGNED: u32 = 1;

/// `enum btf_func_linkage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linkage {
    Static = 0,
    Global = 1,
}

/// Types and strings, in the order they are added.
pub struct BtfWriter {
    types: Vec<u8>,
    count: u32,
    strings: Vec<u8>,
}

impl Default for BtfWriter {
    fn default() -> Self {
        BtfWriter {
            types: Vec::new(),
            count: 0,
            // Offset 0 is the empty string.
            strings: vec![0],
        }
    }
}

impl BtfWriter {
    /// Offset of `s` in the string section, adding it if new.
    pub fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let needle: Vec<u8> = s.bytes().chain([0]).collect();
        // Only whole strings: a match must start after a NUL.
        let mut pos = 1;
        while pos < self.strings.len() {
            let end = pos + self.strings[pos..].iter().position(|&b| b == 0).unwrap() + 1;
            if self.strings[pos..end] == needle[..] {
                return pos as u32;
            }
            pos = end;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(&needle);
        off
    }

    fn push(
        &mut self,
        name: &str,
        kind: Kind,
        kind_flag: bool,
        vlen: u32,
        size_or_type: u32,
    ) -> TypeId {
        let name_off = self.string(name);
        let info = kind.info(kind_flag, vlen);
        for v in [name_off, info, size_or_type] {
            self.types.extend_from_slice(&v.to_le_bytes());
        }
        self.count += 1;
        self.count
    }

    fn extra(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_le_bytes());
    }

    /// An integer type of `bytes` bytes.
    pub fn int(&mut self, name: &str, bytes: u32, signed: bool) -> TypeId {
        let id = self.push(name, Kind::Int, false, 0, bytes);
        let encoding = if signed { INT_SIGNED } else { 0 };
        self.extra((encoding << 24) | (bytes * 8));
        id
    }

    pub fn ptr(&mut self, to: TypeId) -> TypeId {
        self.push("", Kind::Ptr, false, 0, to)
    }

    pub fn typedef(&mut self, name: &str, to: TypeId) -> TypeId {
        self.push(name, Kind::Typedef, false, 0, to)
    }

    /// `struct name;`
    pub fn fwd_struct(&mut self, name: &str) -> TypeId {
        self.push(name, Kind::Fwd, false, 0, 0)
    }

    pub fn func_proto(&mut self, ret: TypeId, params: &[(&str, TypeId)]) -> TypeId {
        let id = self.push("", Kind::FuncProto, false, params.len() as u32, ret);
        for &(name, ty) in params {
            let name_off = self.string(name);
            self.extra(name_off);
            self.extra(ty);
        }
        id
    }

    pub fn func(&mut self, name: &str, proto: TypeId, linkage: Linkage) -> TypeId {
        self.push(name, Kind::Func, false, linkage as u32, proto)
    }

    /// `elem[nelems]`, indexed by `index` (an integer type).
    pub fn array(&mut self, elem: TypeId, index: TypeId, nelems: u32) -> TypeId {
        let id = self.push("", Kind::Array, false, 0, 0);
        for v in [elem, index, nelems] {
            self.extra(v);
        }
        id
    }

    /// The `.BTF` section.
    pub fn to_bytes(&self) -> Vec<u8> {
        let hdr_len = 24u32;
        let mut out = Vec::with_capacity(24 + self.types.len() + self.strings.len());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(VERSION);
        out.push(0); // flags
        for v in [
            hdr_len,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// `struct bpf_line_info`, with `insn_off` in bytes.
#[derive(Clone, Copy, Debug)]
pub struct LineInfo {
    pub insn_off: u32,
    pub file_name_off: u32,
    pub line_off: u32,
    pub line: u32,
    pub col: u32,
}

/// func_info and line_info records, grouped by section name (a `.BTF`
/// string offset).
#[derive(Default)]
pub struct ExtWriter {
    /// (section name offset, [(insn_off, type id)])
    funcs: Vec<(u32, Vec<(u32, TypeId)>)>,
    lines: Vec<(u32, Vec<LineInfo>)>,
}

impl ExtWriter {
    pub fn func(&mut self, sec_name_off: u32, insn_off: u32, ty: TypeId) {
        match self.funcs.iter_mut().find(|(s, _)| *s == sec_name_off) {
            Some((_, v)) => v.push((insn_off, ty)),
            None => self.funcs.push((sec_name_off, vec![(insn_off, ty)])),
        }
    }

    pub fn line(&mut self, sec_name_off: u32, info: LineInfo) {
        match self.lines.iter_mut().find(|(s, _)| *s == sec_name_off) {
            Some((_, v)) => v.push(info),
            None => self.lines.push((sec_name_off, vec![info])),
        }
    }

    /// The `.BTF.ext` section: header (with empty CO-RE relocations, as
    /// clang writes it), func_info, line_info.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut func = Vec::new();
        func.extend_from_slice(&8u32.to_le_bytes());
        for (sec, recs) in &self.funcs {
            let mut recs = recs.clone();
            recs.sort_by_key(|r| r.0);
            for v in [*sec, recs.len() as u32] {
                func.extend_from_slice(&v.to_le_bytes());
            }
            for (off, ty) in recs {
                func.extend_from_slice(&off.to_le_bytes());
                func.extend_from_slice(&ty.to_le_bytes());
            }
        }
        let mut line = Vec::new();
        line.extend_from_slice(&16u32.to_le_bytes());
        for (sec, recs) in &self.lines {
            let mut recs = recs.clone();
            recs.sort_by_key(|r| r.insn_off);
            for v in [*sec, recs.len() as u32] {
                line.extend_from_slice(&v.to_le_bytes());
            }
            for r in recs {
                for v in [
                    r.insn_off,
                    r.file_name_off,
                    r.line_off,
                    (r.line << 10) | (r.col & 0x3ff),
                ] {
                    line.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let hdr_len = 32u32;
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(VERSION);
        out.push(0);
        for v in [
            hdr_len,
            0,
            func.len() as u32,
            func.len() as u32,
            line.len() as u32,
            (func.len() + line.len()) as u32,
            0,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&func);
        out.extend_from_slice(&line);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_shared() {
        let mut b = BtfWriter::default();
        let a = b.string("abc");
        assert_eq!(a, 1);
        assert_eq!(b.string("abc"), 1);
        // A suffix of an existing string is added as its own string.
        assert_eq!(b.string("bc"), 5);
        assert_eq!(b.string(""), 0);
    }

    #[test]
    fn header_lengths() {
        let mut b = BtfWriter::default();
        let u32_ = b.int("unsigned int", 4, false);
        let p = b.ptr(0);
        let proto = b.func_proto(u32_, &[("ctx", p)]);
        b.func("f", proto, Linkage::Global);
        let bytes = b.to_bytes();
        assert_eq!(&bytes[..4], &[0x9f, 0xeb, 1, 0]);
        let type_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
        // INT 16, PTR 12, FUNC_PROTO 12 + 8, FUNC 12.
        assert_eq!(type_len, 16 + 12 + 20 + 12);
    }
}
