//! `.BTF.ext` as an object carries it: func_info, line_info and CO-RE
//! records grouped by section, read, changed and written back, with where
//! each record's `insn_off` field went (its relocation follows it).
//!
//! In an ELF object every `.BTF.ext` record starts with `insn_off`, the byte
//! offset of its instruction in the section named by its block's
//! `sec_name_off` (a `.BTF` string).

use crate::{u32_at, Btf, MAGIC};

/// One `.BTF.ext` record, with where its `insn_off` field was in the input.
#[derive(Clone)]
pub struct Record {
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

pub struct SecBlock {
    pub sec_name_off: u32,
    pub name: String,
    pub records: Vec<Record>,
}

pub struct InfoSet {
    pub rec_size: u32,
    pub blocks: Vec<SecBlock>,
}

/// The three record sets, in header order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum InfoKind {
    Func,
    Line,
    CoreRelo,
}

pub struct BtfExt {
    header: Vec<u8>,
    /// func_info, line_info, core_relo (None when the header has no field).
    pub sets: [Option<InfoSet>; 3],
}

impl BtfExt {
    pub fn parse(data: &[u8], btf: &Btf) -> Result<Self, String> {
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

    pub fn set_mut(&mut self, k: InfoKind) -> Option<&mut InfoSet> {
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

/// Where a record's `insn_off` field went: see [`BtfExt::write`].
pub struct MovedField {
    pub old: Option<usize>,
    pub sibling: Option<usize>,
    pub new: usize,
}

fn parse_set(
    data: &[u8],
    hdr_len: usize,
    off: usize,
    len: usize,
    btf: &Btf,
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
pub fn func_type_at(ext: &BtfExt, sec: &str, insn_off: u64) -> Option<u32> {
    let set = ext.sets[InfoKind::Func as usize].as_ref()?;
    set.blocks
        .iter()
        .filter(|b| b.name == sec)
        .flat_map(|b| &b.records)
        .find(|r| u64::from(r.insn_off()) == insn_off)
        .and_then(|r| u32_at(&r.bytes, 4))
}
