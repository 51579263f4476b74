//! Just enough BTF to check a stub's signature, and a `.BTF.ext` reader and
//! writer that moves func_info, line_info and CO-RE records with the code.
//!
//! In an ELF object every `.BTF.ext` record starts with `insn_off`, the byte
//! offset of its instruction in the section named by its block's
//! `sec_name_off` (a `.BTF` string).

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

#[derive(Clone, Copy)]
struct Type {
    kind: u32,
    vlen: u32,
    size_or_type: u32,
}

/// The parsed `.BTF` section: its string table and the types up to the first
/// kind this reader does not know (enough for signature checks).
pub(crate) struct Btf<'a> {
    strings: &'a [u8],
    types: Vec<Type>,
}

impl<'a> Btf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        let magic = data.get(..2).map(|m| u16::from_le_bytes([m[0], m[1]]));
        if magic != Some(MAGIC) {
            return Err("bad magic (not little-endian BTF)".into());
        }
        let field = |i: usize| u32_at(data, 4 + 4 * i).ok_or("truncated header");
        let hdr_len = field(0)? as usize;
        let (type_off, type_len) = (field(1)? as usize, field(2)? as usize);
        let (str_off, str_len) = (field(3)? as usize, field(4)? as usize);
        let range = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            data.get(start..start.checked_add(len)?)
        };
        let types_data = range(type_off, type_len).ok_or("type section out of bounds")?;
        let strings = range(str_off, str_len).ok_or("string section out of bounds")?;

        let mut types = vec![Type {
            kind: 0,
            vlen: 0,
            size_or_type: 0,
        }]; // [0] = void
        let mut pos = 0;
        while pos + 12 <= types_data.len() {
            let info = u32_at(types_data, pos + 4).unwrap();
            let size_or_type = u32_at(types_data, pos + 8).unwrap();
            let (kind, vlen) = ((info >> 24) & 0x1f, info & 0xffff);
            let extra = match kind {
                1 | 14 | 17 => 4,              // INT, VAR, DECL_TAG
                3 => 12,                       // ARRAY
                4 | 5 => 12 * vlen as usize,   // STRUCT, UNION
                6 | 13 => 8 * vlen as usize,   // ENUM, FUNC_PROTO
                15 | 19 => 12 * vlen as usize, // DATASEC, ENUM64
                2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
                _ => break,                // unknown: stop here
            };
            types.push(Type {
                kind,
                vlen,
                size_or_type,
            });
            pos += 12 + extra;
        }
        Ok(Btf { strings, types })
    }

    pub fn string(&self, off: u32) -> Option<&'a str> {
        let rest = self.strings.get(off as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    fn get(&self, id: u32) -> Option<Type> {
        self.types.get(id as usize).copied()
    }

    /// Checks that FUNC `func_id` has the filter's signature: four
    /// parameters and an integer result. `Ok` when BTF cannot tell.
    pub fn check_filter_func(&self, func_id: u32) -> Result<(), String> {
        let Some(func) = self.get(func_id).filter(|t| t.kind == KIND_FUNC) else {
            return Ok(());
        };
        let Some(proto) = self
            .get(func.size_or_type)
            .filter(|t| t.kind == KIND_FUNC_PROTO)
        else {
            return Ok(());
        };
        if proto.vlen != 4 {
            return Err(format!(
                "its BTF prototype takes {} parameters, not 4",
                proto.vlen
            ));
        }
        // Follow typedefs and qualifiers to the return type.
        let mut id = proto.size_or_type;
        for _ in 0..32 {
            if id == 0 {
                return Err("its BTF prototype returns void".into());
            }
            let Some(t) = self.get(id) else { return Ok(()) };
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                KIND_INT | KIND_ENUM | KIND_ENUM64 => return Ok(()),
                KIND_PTR => return Err("its BTF prototype returns a pointer".into()),
                _ => return Err("its BTF prototype returns a non-integer type".into()),
            }
        }
        Ok(())
    }
}

/// One `.BTF.ext` record, with where its `insn_off` field was in the input.
#[derive(Clone)]
pub(crate) struct Record {
    pub bytes: Vec<u8>,
    pub old_pos: Option<usize>,
}

impl Record {
    pub fn insn_off(&self) -> u32 {
        u32_at(&self.bytes, 0).unwrap()
    }
    pub fn set_insn_off(&mut self, v: u32) {
        self.bytes[..4].copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) struct SecBlock {
    pub sec_name_off: u32,
    pub name: String,
    pub records: Vec<Record>,
}

pub(crate) struct InfoSet {
    pub rec_size: u32,
    pub blocks: Vec<SecBlock>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Func,
    Line,
    CoreRelo,
}

pub(crate) struct BtfExt {
    header: Vec<u8>,
    /// func_info, line_info, core_relo (None when the header has no field).
    pub sets: [Option<InfoSet>; 3],
}

impl BtfExt {
    pub fn parse(data: &[u8], btf: &Btf<'_>) -> Result<Self, String> {
        let magic = data.get(..2).map(|m| u16::from_le_bytes([m[0], m[1]]));
        if magic != Some(MAGIC) {
            return Err("bad magic".into());
        }
        let hdr_len = u32_at(data, 4).ok_or("truncated header")? as usize;
        if hdr_len < 24 || hdr_len > data.len() {
            return Err(format!("header length {hdr_len}"));
        }
        if hdr_len > 32 {
            return Err(format!(
                "header of {hdr_len} bytes has fields this injector does not know"
            ));
        }
        let mut sets = [None, None, None];
        for (i, set) in sets.iter_mut().enumerate() {
            let field = 8 + 8 * i;
            if field + 8 > hdr_len {
                break;
            }
            let off = u32_at(data, field).unwrap() as usize;
            let len = u32_at(data, field + 4).unwrap() as usize;
            *set = Some(parse_set(data, hdr_len, off, len, btf)?);
        }
        Ok(BtfExt {
            header: data[..hdr_len].to_vec(),
            sets,
        })
    }

    pub fn set_mut(&mut self, k: Kind) -> Option<&mut InfoSet> {
        self.sets[k as usize].as_mut()
    }

    /// Serialises; returns the bytes and, for every record that came from
    /// the input, its `insn_off` position then (old, new). Records added
    /// since are listed with `old == None` and the old position of a sibling
    /// record in the same block (to copy its relocation).
    pub fn write(&self) -> (Vec<u8>, Vec<MovedField>) {
        let mut out = self.header.clone();
        let hdr_len = out.len();
        let mut moved = Vec::new();
        for (i, set) in self.sets.iter().enumerate() {
            let Some(set) = set else { continue };
            let start = out.len() - hdr_len;
            if !set.blocks.is_empty() || set.rec_size != 0 {
                out.extend_from_slice(&set.rec_size.to_le_bytes());
                // libbpf refuses blocks without records.
                for b in set.blocks.iter().filter(|b| !b.records.is_empty()) {
                    out.extend_from_slice(&b.sec_name_off.to_le_bytes());
                    out.extend_from_slice(&(b.records.len() as u32).to_le_bytes());
                    let sibling = b.records.iter().find_map(|r| r.old_pos);
                    for r in &b.records {
                        moved.push(MovedField {
                            old: r.old_pos,
                            sibling,
                            new: out.len(),
                        });
                        out.extend_from_slice(&r.bytes);
                    }
                }
            }
            let len = out.len() - hdr_len - start;
            let field = 8 + 8 * i;
            out[field..field + 4].copy_from_slice(&(start as u32).to_le_bytes());
            out[field + 4..field + 8].copy_from_slice(&(len as u32).to_le_bytes());
        }
        (out, moved)
    }
}

pub(crate) struct MovedField {
    pub old: Option<usize>,
    pub sibling: Option<usize>,
    pub new: usize,
}

fn parse_set(
    data: &[u8],
    hdr_len: usize,
    off: usize,
    len: usize,
    btf: &Btf<'_>,
) -> Result<InfoSet, String> {
    if len == 0 {
        return Ok(InfoSet {
            rec_size: 0,
            blocks: Vec::new(),
        });
    }
    let start = hdr_len.checked_add(off).ok_or("offset overflow")?;
    let end = start.checked_add(len).ok_or("length overflow")?;
    let sub = data.get(start..end).ok_or("info block out of bounds")?;
    let rec_size = u32_at(sub, 0).ok_or("truncated info block")?;
    if rec_size < 4 || rec_size % 4 != 0 || rec_size > 256 {
        return Err(format!("record size {rec_size}"));
    }
    let rs = rec_size as usize;
    let mut blocks = Vec::new();
    let mut pos = 4;
    while pos < sub.len() {
        let sec_name_off = u32_at(sub, pos).ok_or("truncated block header")?;
        let num = u32_at(sub, pos + 4).ok_or("truncated block header")? as usize;
        pos += 8;
        let bytes = num
            .checked_mul(rs)
            .filter(|&n| pos + n <= sub.len())
            .ok_or("records past the block")?;
        let name = btf
            .string(sec_name_off)
            .ok_or("section name not in the BTF strings")?
            .to_owned();
        let records = (0..num)
            .map(|i| Record {
                bytes: sub[pos + i * rs..pos + (i + 1) * rs].to_vec(),
                old_pos: Some(start + pos + i * rs),
            })
            .collect();
        pos += bytes;
        blocks.push(SecBlock {
            sec_name_off,
            name,
            records,
        });
    }
    Ok(InfoSet { rec_size, blocks })
}

/// func_info type of the function at `insn_off` in section `sec`.
pub(crate) fn func_type_at(ext: &BtfExt, sec: &str, insn_off: u64) -> Option<u32> {
    let set = ext.sets[Kind::Func as usize].as_ref()?;
    set.blocks
        .iter()
        .filter(|b| b.name == sec)
        .flat_map(|b| &b.records)
        .find(|r| u64::from(r.insn_off()) == insn_off)
        .and_then(|r| u32_at(&r.bytes, 4))
}
