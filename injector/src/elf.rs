//! Reading a BPF ELF relocatable object (through `object`'s low-level ELF
//! layer, which bounds-checks every header and table) and writing it back
//! with some sections replaced.

use object::{
    elf,
    read::elf::{FileHeader, SectionHeader, Sym},
    LittleEndian as LE, U64,
};

use crate::Error;

pub(crate) const EM_BPF: u16 = 247;

pub(crate) const R_BPF_NONE: u32 = 0;
pub(crate) const R_BPF_64_64: u32 = 1;
pub(crate) const R_BPF_64_32: u32 = 10;

pub(crate) type Ehdr = elf::FileHeader64<LE>;
pub(crate) type Shdr = elf::SectionHeader64<LE>;

pub(crate) struct Section<'a> {
    pub hdr: Shdr,
    pub name: String,
    /// File contents (empty for SHT_NULL and SHT_NOBITS).
    pub data: &'a [u8],
}

impl Section<'_> {
    pub fn sh_type(&self) -> u32 {
        self.hdr.sh_type.get(LE)
    }
    pub fn is_code(&self) -> bool {
        self.sh_type() == elf::SHT_PROGBITS
            && self.hdr.sh_flags.get(LE) & u64::from(elf::SHF_EXECINSTR) != 0
    }
    /// libbpf and aya treat `.text*` as subprograms, every other code
    /// section as programs.
    pub fn holds_programs(&self) -> bool {
        self.is_code() && !self.name.starts_with(".text")
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    pub name: String,
    pub value: u64,
    pub size: u64,
    pub st_type: u8,
    /// The section it is defined in, if any.
    pub section: Option<usize>,
}

impl Symbol {
    pub fn is_func(&self) -> bool {
        self.st_type == elf::STT_FUNC
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Rel {
    pub offset: u64,
    pub sym: u32,
    pub kind: u32,
}

pub(crate) struct RelSection {
    /// The section the relocations apply to.
    pub target: usize,
    pub rels: Vec<Rel>,
}

pub(crate) struct Elf<'a> {
    pub header: Ehdr,
    pub sections: Vec<Section<'a>>,
    pub symtab: Option<usize>,
    pub symbols: Vec<Symbol>,
    /// Indexed like `sections`.
    pub rel_sections: Vec<Option<RelSection>>,
}

fn malformed(e: impl std::fmt::Display) -> Error {
    Error::Malformed(e.to_string())
}

impl<'a> Elf<'a> {
    /// Parses a little-endian eBPF relocatable object: its header, then
    /// its sections, symbols and relocation sections, each checked.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let header = check_header(data)?;
        let table = header.sections(LE, data).map_err(malformed)?;
        let sections = read_sections(&table, data)?;
        let (symtab, symbols) = read_symbols(&table, data, sections.len())?;
        let rel_sections = read_relocations(&sections, symtab, symbols.len())?;
        Ok(Elf {
            header: *header,
            sections,
            symtab,
            symbols,
            rel_sections,
        })
    }

    pub fn section_by_name(&self, name: &str) -> Option<(usize, &Section<'a>)> {
        self.sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    /// The relocation section that applies to section `target`.
    pub fn rels_for(&self, target: usize) -> Option<(usize, &RelSection)> {
        self.rel_sections
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.as_ref().filter(|r| r.target == target).map(|r| (i, r)))
    }

    /// Writes the object back with each section's contents taken from
    /// `contents` (same indexing as `sections`) and `extra` sections after
    /// them: a fresh layout, header, sections in order, then the section
    /// header table. The names of `extra` go into the section name table.
    pub fn write(&self, contents: &[Vec<u8>], extra: &[NewSection]) -> Vec<u8> {
        let mut contents = contents.to_vec();
        let mut all = Vec::with_capacity(self.sections.len() + extra.len());
        all.extend(self.sections.iter().map(|s| s.hdr));
        let shstrndx = usize::from(self.header.e_shstrndx.get(LE));
        for x in extra {
            let mut hdr = x.hdr;
            if let Some(names) = contents.get_mut(shstrndx) {
                hdr.sh_name = object::U32::new(LE, names.len() as u32);
                names.extend_from_slice(x.name.as_bytes());
                names.push(0);
            }
            all.push(hdr);
            contents.push(x.data.clone());
        }
        let mut header = self.header;
        header.e_shnum = object::U16::new(LE, all.len() as u16);
        write_sections(&header, &all, &contents)
    }
}

type SectionTable<'a> = object::read::elf::SectionTable<'a, Ehdr>;

/// The ELF header of an eBPF relocatable object, 64-bit, little-endian.
fn check_header(data: &[u8]) -> Result<&Ehdr, Error> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(Error::NotElf);
    }
    if data.len() < 20 {
        return Err(malformed("truncated ELF header"));
    }
    let big_endian = data[5] == elf::ELFDATA2MSB;
    let machine = if big_endian {
        u16::from_be_bytes([data[18], data[19]])
    } else {
        u16::from_le_bytes([data[18], data[19]])
    };
    if machine != EM_BPF {
        return Err(Error::NotBpf {
            machine,
            name: machine_name(machine),
        });
    }
    if data[4] != elf::ELFCLASS64 {
        return Err(Error::Unsupported(
            "32-bit ELF (eBPF objects are ELFCLASS64)".into(),
        ));
    }
    if big_endian {
        return Err(Error::Unsupported(
            "big-endian eBPF object (bpfeb); only bpfel is supported".into(),
        ));
    }
    let header = Ehdr::parse(data).map_err(malformed)?;
    let e_type = header.e_type(LE);
    if e_type != elf::ET_REL {
        return Err(Error::Unsupported(format!(
            "ELF type {e_type} is not a relocatable object (ET_REL); splice the object the compiler wrote"
        )));
    }
    if header.e_phnum(LE) != 0 {
        return Err(malformed("a relocatable object with program headers"));
    }
    Ok(header)
}

/// Every section with its name and contents; contents may not overlap.
fn read_sections<'a>(table: &SectionTable<'a>, data: &'a [u8]) -> Result<Vec<Section<'a>>, Error> {
    let mut sections = Vec::with_capacity(table.len());
    let mut total = 0u64;
    for sh in table.iter() {
        let name = table.section_name(LE, sh).map_err(malformed)?;
        let ty = sh.sh_type(LE);
        let contents = if ty == elf::SHT_NULL || ty == elf::SHT_NOBITS {
            &[][..]
        } else {
            sh.data(LE, data)
                .map_err(|_| malformed("section contents out of the file"))?
        };
        total += contents.len() as u64;
        sections.push(Section {
            hdr: *sh,
            name: String::from_utf8_lossy(name).into_owned(),
            data: contents,
        });
    }
    // Sections may not overlap: the rebuilt file holds each one once.
    if total > data.len() as u64 {
        return Err(malformed("section contents overlap"));
    }

    Ok(sections)
}

/// The symbol table's index and its symbols, each in a section that exists.
fn read_symbols(
    table: &SectionTable<'_>,
    data: &[u8],
    section_count: usize,
) -> Result<(Option<usize>, Vec<Symbol>), Error> {
    let mut symtab = None;
    let mut symbols = Vec::new();
    if let Some((i, _)) = table
        .enumerate()
        .find(|(_, s)| s.sh_type(LE) == elf::SHT_SYMTAB)
    {
        symtab = Some(i.0);
        let st = table
            .symbols(LE, data, elf::SHT_SYMTAB)
            .map_err(malformed)?;
        for (index, sym) in st.enumerate() {
            let name = st.symbol_name(LE, sym).map_err(malformed)?;
            let section = st
                .symbol_section(LE, sym, index)
                .map_err(malformed)?
                .map(|s| s.0);
            if section.is_some_and(|s| s >= section_count) {
                return Err(malformed(format!(
                    "symbol {} in a section that does not exist",
                    index.0
                )));
            }
            symbols.push(Symbol {
                name: String::from_utf8_lossy(name).into_owned(),
                value: sym.st_value(LE),
                size: sym.st_size(LE),
                st_type: sym.st_type(),
                section,
            });
        }
    }

    Ok((symtab, symbols))
}

/// For each section, its relocations when it is a REL section: applied to
/// a valid section, against the symbol table, naming symbols that exist.
/// RELA in code is refused.
fn read_relocations(
    sections: &[Section<'_>],
    symtab: Option<usize>,
    symbol_count: usize,
) -> Result<Vec<Option<RelSection>>, Error> {
    let mut rel_sections = Vec::with_capacity(sections.len());
    for (i, s) in sections.iter().enumerate() {
        let ty = s.sh_type();
        let target = s.hdr.sh_info.get(LE) as usize;
        if ty == elf::SHT_RELA && sections.get(target).is_some_and(|t| t.is_code()) {
            return Err(Error::Relocation {
                section: sections[target].name.clone(),
                offset: 0,
                detail: format!("RELA relocations ({}) in an eBPF object", s.name),
            });
        }
        if ty != elf::SHT_REL {
            rel_sections.push(None);
            continue;
        }
        if target == 0 || target >= sections.len() || target == i {
            return Err(malformed(format!(
                "relocation section {} applies to no valid section",
                s.name
            )));
        }
        if Some(s.hdr.sh_link.get(LE) as usize) != symtab {
            return Err(malformed(format!(
                "relocation section {} does not use the symbol table",
                s.name
            )));
        }
        let raw: &[elf::Rel64<LE>] = object::pod::slice_from_all_bytes(s.data)
            .map_err(|_| malformed(format!("relocation section {} has a bad size", s.name)))?;
        let rels = raw
            .iter()
            .map(|r| Rel {
                offset: r.r_offset.get(LE),
                sym: r.r_sym(LE),
                kind: r.r_type(LE),
            })
            .collect::<Vec<_>>();
        if let Some(r) = rels.iter().find(|r| r.sym as usize >= symbol_count) {
            return Err(malformed(format!(
                "relocation in {} names symbol {} which does not exist",
                s.name, r.sym
            )));
        }
        rel_sections.push(Some(RelSection { target, rels }));
    }

    Ok(rel_sections)
}

/// A section added to an object.
pub(crate) struct NewSection {
    pub name: String,
    pub hdr: Shdr,
    pub data: Vec<u8>,
}

impl NewSection {
    /// `SHT_REL` relocations (`data`) for section `target`, against
    /// symbol table `symtab`.
    pub fn rel(name: &str, symtab: usize, target: usize, data: Vec<u8>) -> Self {
        let u32v = |v: u32| object::U32::new(LE, v);
        let u64v = |v: u64| U64::new(LE, v);
        NewSection {
            name: name.to_owned(),
            hdr: Shdr {
                sh_name: u32v(0),
                sh_type: u32v(elf::SHT_REL),
                sh_flags: u64v(u64::from(elf::SHF_INFO_LINK)),
                sh_addr: u64v(0),
                sh_offset: u64v(0),
                sh_size: u64v(0),
                sh_link: u32v(symtab as u32),
                sh_info: u32v(target as u32),
                sh_addralign: u64v(8),
                sh_entsize: u64v(16),
            },
            data,
        }
    }
}

/// Lays out `header`, the sections (`headers`, `contents`) and the section
/// header table.
fn write_sections(header: &Ehdr, headers: &[Shdr], contents: &[Vec<u8>]) -> Vec<u8> {
    let ehsize = std::mem::size_of::<Ehdr>();
    let mut out = Vec::with_capacity(ehsize + contents.iter().map(Vec::len).sum::<usize>() + 4096);
    out.resize(ehsize, 0);
    let mut out_headers = Vec::with_capacity(headers.len());
    for (s, data) in headers.iter().zip(contents) {
        let mut hdr = *s;
        let ty = s.sh_type.get(LE);
        if ty != elf::SHT_NULL && ty != elf::SHT_NOBITS {
            let align = s.sh_addralign.get(LE).clamp(1, 4096) as usize;
            let pad = out.len().next_multiple_of(align) - out.len();
            out.resize(out.len() + pad, 0);
            hdr.sh_offset = U64::new(LE, out.len() as u64);
            hdr.sh_size = U64::new(LE, data.len() as u64);
            out.extend_from_slice(data);
        }
        out_headers.push(hdr);
    }
    out.resize(out.len().next_multiple_of(8), 0);
    let mut header = *header;
    header.e_shoff = U64::new(LE, out.len() as u64);
    header.e_phoff = U64::new(LE, 0);
    for h in &out_headers {
        out.extend_from_slice(object::pod::bytes_of(h));
    }
    out[..ehsize].copy_from_slice(object::pod::bytes_of(&header));
    out
}

pub(crate) fn machine_name(machine: u16) -> &'static str {
    match machine {
        0 => "none",
        3 => "x86",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "ARM",
        62 => "x86-64",
        183 => "AArch64",
        243 => "RISC-V",
        258 => "LoongArch",
        _ => "unknown",
    }
}

/// Symbol table entry field offsets (`Elf64_Sym`).
pub(crate) const SYM_SIZE: usize = 24;
pub(crate) const SYM_VALUE: usize = 8;
pub(crate) const SYM_SIZE_FIELD: usize = 16;

pub(crate) const STT_NOTYPE: u8 = elf::STT_NOTYPE;

/// Sets the value and size (and the type, if given) of symbol entry `at`
/// (a byte offset) of a symbol table.
pub(crate) fn set_symbol(table: &mut [u8], at: usize, value: u64, size: u64, st_type: Option<u8>) {
    table[at + SYM_VALUE..at + SYM_VALUE + 8].copy_from_slice(&value.to_le_bytes());
    table[at + SYM_SIZE_FIELD..at + SYM_SIZE_FIELD + 8].copy_from_slice(&size.to_le_bytes());
    if let Some(t) = st_type {
        table[at + 4] = (table[at + 4] & 0xf0) | t;
    }
}

/// An `Elf64_Sym` for a global, hidden function in section `shndx`.
pub(crate) fn func_symbol(name: u32, shndx: usize, value: u64, size: u64) -> [u8; SYM_SIZE] {
    let mut b = [0u8; SYM_SIZE];
    b[..4].copy_from_slice(&name.to_le_bytes());
    b[4] = (elf::STB_GLOBAL << 4) | elf::STT_FUNC;
    b[5] = elf::STV_HIDDEN;
    b[6..8].copy_from_slice(&(shndx as u16).to_le_bytes());
    b[SYM_VALUE..SYM_VALUE + 8].copy_from_slice(&value.to_le_bytes());
    b[SYM_SIZE_FIELD..SYM_SIZE_FIELD + 8].copy_from_slice(&size.to_le_bytes());
    b
}

/// Encodes one `Elf64_Rel`.
pub(crate) fn rel_bytes(r: &Rel) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&r.offset.to_le_bytes());
    b[8..].copy_from_slice(&((u64::from(r.sym) << 32) | u64::from(r.kind)).to_le_bytes());
    b
}
