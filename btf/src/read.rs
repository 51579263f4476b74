//! The reader: a `.BTF` blob's types, by id and by name, and the questions
//! xcap asks of them.

use crate::{u32_at, Kind, TypeId, MAGIC};

/// Where the running kernel publishes its BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// One type: its header, and where its kind-specific data starts in the
/// blob.
#[derive(Clone, Copy, Debug)]
pub struct Type {
    /// Offset of its name in the string section (0: anonymous).
    pub name_off: u32,
    /// `None` for id 0, `void`.
    pub kind: Option<Kind>,
    pub kind_flag: bool,
    pub vlen: u32,
    /// Its size or the type it refers to, by kind.
    pub size_or_type: u32,
    data: usize,
}

/// A parameter of a function prototype.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub type_id: TypeId,
}

/// A parsed BTF blob: the types up to the first kind [`Kind`] does not
/// know (a newer kernel's), which [`Btf::vmlinux`] refuses and an object's
/// reader lives with.
pub struct Btf {
    data: Vec<u8>,
    strings: std::ops::Range<usize>,
    types: Vec<Type>,
    unknown_kind: Option<u32>,
}

impl Btf {
    /// The running kernel's BTF. `XCAP_VMLINUX_BTF` overrides the path
    /// (tests use it to check the error when BTF is missing).
    pub fn vmlinux() -> Result<Btf, String> {
        let path = std::env::var("XCAP_VMLINUX_BTF").unwrap_or_else(|_| VMLINUX.to_owned());
        let data = std::fs::read(&path).map_err(|e| {
            format!(
                "kernel BTF not readable at {path} ({}): tracing hooks need a kernel built with CONFIG_DEBUG_INFO_BTF",
                e.kind()
            )
        })?;
        let btf = Btf::parse(data).map_err(|e| format!("{path}: {e}"))?;
        match btf.unknown_kind {
            Some(k) => Err(format!("{path}: unknown BTF kind {k}")),
            None => Ok(btf),
        }
    }

    /// Parses a `.BTF` blob (little-endian), checking every bound.
    pub fn parse(data: Vec<u8>) -> Result<Btf, String> {
        let magic = data.get(..2).map(|m| u16::from_le_bytes([m[0], m[1]]));
        if magic != Some(MAGIC) {
            return Err("bad magic (not little-endian BTF)".into());
        }
        let field = |i: usize| u32_at(&data, 4 + 4 * i).ok_or("truncated header");
        let hdr_len = field(0)? as usize;
        let (type_off, type_len) = (field(1)? as usize, field(2)? as usize);
        let (str_off, str_len) = (field(3)? as usize, field(4)? as usize);
        let range = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            let end = start.checked_add(len)?;
            (end <= data.len()).then_some(start..end)
        };
        let type_range = range(type_off, type_len).ok_or("type section out of bounds")?;
        let strings = range(str_off, str_len).ok_or("string section out of bounds")?;

        let void = Type {
            name_off: 0,
            kind: None,
            kind_flag: false,
            vlen: 0,
            size_or_type: 0,
            data: 0,
        };
        let mut types = vec![void];
        let mut unknown_kind = None;
        let mut pos = type_range.start;
        while pos + 12 <= type_range.end {
            let info = u32_at(&data, pos + 4).unwrap();
            let number = (info >> 24) & 0x1f;
            let Some(kind) = Kind::from_u32(number) else {
                unknown_kind = Some(number);
                break;
            };
            let vlen = info & 0xffff;
            types.push(Type {
                name_off: u32_at(&data, pos).unwrap(),
                kind: Some(kind),
                kind_flag: info >> 31 != 0,
                vlen,
                size_or_type: u32_at(&data, pos + 8).unwrap(),
                data: pos + 12,
            });
            pos += 12 + kind.data_len(vlen);
        }
        Ok(Btf {
            data,
            strings,
            types,
            unknown_kind,
        })
    }

    /// The blob as read (for another reader of the same types, such as
    /// aya's).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The string at offset `off` of the string section.
    pub fn string(&self, off: u32) -> Option<&str> {
        let strings = &self.data[self.strings.clone()];
        let rest = strings.get(off as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    fn name(&self, t: &Type) -> &str {
        self.string(t.name_off).unwrap_or("")
    }

    /// Type `id`; id 0 is `void`.
    pub fn get(&self, id: TypeId) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// The `k`-th 32-bit word of type `t`'s kind-specific data.
    fn word(&self, t: &Type, k: usize) -> u32 {
        u32_at(&self.data, t.data + 4 * k).unwrap_or(0)
    }

    /// The first type named `name` of kind `kind`.
    ///
    /// A scan, not an index: the few dozen lookups of a capture's start
    /// cost less than indexing the kernel's 100,000 names would.
    pub fn find(&self, name: &str, kind: Kind) -> Option<TypeId> {
        let strings = &self.data[self.strings.clone()];
        let wanted = name.as_bytes();
        let named = |t: &Type| {
            let start = t.name_off as usize;
            let end = start + wanted.len();
            strings.get(start..end) == Some(wanted) && strings.get(end) == Some(&0)
        };
        let at = self
            .types
            .iter()
            .position(|t| t.kind == Some(kind) && !wanted.is_empty() && named(t))?;
        Some(at as TypeId)
    }

    /// Follows typedefs and qualifiers from `id`.
    pub fn resolve(&self, mut id: TypeId) -> TypeId {
        for _ in 0..32 {
            match self.get(id) {
                Some(t) if t.kind.is_some_and(Kind::is_alias) => id = t.size_or_type,
                _ => return id,
            }
        }
        id
    }

    /// Byte offset of `field` in `struct name` (or union), looking through
    /// anonymous structs and unions.
    pub fn member_offset(&self, name: &str, field: &str) -> Option<u32> {
        let id = self
            .find(name, Kind::Struct)
            .or_else(|| self.find(name, Kind::Union))?;
        self.member_in(id, field, 0).map(|bits| bits / 8)
    }

    fn member_in(&self, id: TypeId, field: &str, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        let t = self.get(id)?;
        if !matches!(t.kind, Some(Kind::Struct | Kind::Union)) {
            return None;
        }
        for m in 0..t.vlen as usize {
            let (name, ty, off) = (
                self.word(t, 3 * m),
                self.word(t, 3 * m + 1),
                self.word(t, 3 * m + 2),
            );
            // With kind_flag, the offset's top byte is a bitfield size.
            let bits = if t.kind_flag { off & 0xff_ffff } else { off };
            if name == 0 {
                if let Some(inner) = self.member_in(self.resolve(ty), field, depth + 1) {
                    return Some(bits + inner);
                }
            } else if self.string(name) == Some(field) {
                return Some(bits);
            }
        }
        None
    }

    /// Whether a function of this name exists.
    pub fn has_function(&self, name: &str) -> bool {
        self.function_id(name).is_some()
    }

    /// The prototype of FUNC `func`: (return type, parameter count).
    pub fn prototype(&self, func: TypeId) -> Option<(TypeId, u32)> {
        let f = self.get(func).filter(|t| t.kind == Some(Kind::Func))?;
        let proto = self
            .get(f.size_or_type)
            .filter(|t| t.kind == Some(Kind::FuncProto))?;
        Some((proto.size_or_type, proto.vlen))
    }

    /// The parameters of function `name`.
    pub fn function_params(&self, name: &str) -> Option<Vec<Param>> {
        let f = self.find(name, Kind::Func)?;
        let proto = self.resolve(self.types[f as usize].size_or_type);
        let t = self
            .get(proto)
            .filter(|t| t.kind == Some(Kind::FuncProto))?;
        Some(
            (0..t.vlen as usize)
                .map(|i| Param {
                    name: self.string(self.word(t, 2 * i)).unwrap_or("").to_owned(),
                    type_id: self.word(t, 2 * i + 1),
                })
                .collect(),
        )
    }

    /// The type id a `tp_btf` program on tracepoint `name` attaches to:
    /// its `btf_trace_<name>` typedef.
    pub fn tracepoint_id(&self, name: &str) -> Option<TypeId> {
        self.find(&format!("btf_trace_{name}"), Kind::Typedef)
    }

    /// The type id of function `name` (an `fentry` target).
    pub fn function_id(&self, name: &str) -> Option<TypeId> {
        self.find(name, Kind::Func)
    }

    /// How many arguments tracepoint `name` passes to a `tp_btf` program
    /// (the prototype of `btf_trace_<name>`, less its context pointer):
    /// tracepoints gain arguments across kernel versions.
    pub fn tracepoint_args(&self, name: &str) -> Option<usize> {
        let typedef = self.tracepoint_id(name)?;
        let ptr = self.get(self.resolve(typedef))?;
        if ptr.kind != Some(Kind::Ptr) {
            return None;
        }
        let proto = self.get(self.resolve(ptr.size_or_type))?;
        (proto.kind == Some(Kind::FuncProto)).then(|| (proto.vlen as usize).saturating_sub(1))
    }

    /// Whether type `id` is a pointer to `struct name`.
    pub fn is_ptr_to_struct(&self, id: TypeId, name: &str) -> bool {
        let Some(t) = self.get(self.resolve(id)) else {
            return false;
        };
        if t.kind != Some(Kind::Ptr) {
            return false;
        }
        self.get(self.resolve(t.size_or_type))
            .is_some_and(|s| s.kind == Some(Kind::Struct) && self.name(s) == name)
    }

    /// The C spelling of a (simple) type, for messages.
    pub fn type_name(&self, id: TypeId) -> String {
        let Some(t) = self.get(id) else {
            return "?".into();
        };
        match t.kind {
            None => "void".into(),
            Some(Kind::Ptr) => format!("{} *", self.type_name(t.size_or_type)),
            Some(Kind::Const) => format!("const {}", self.type_name(t.size_or_type)),
            Some(Kind::Volatile) => format!("volatile {}", self.type_name(t.size_or_type)),
            Some(Kind::Struct) => format!("struct {}", self.name(t)),
            Some(Kind::Union) => format!("union {}", self.name(t)),
            Some(Kind::Enum | Kind::Enum64) => format!("enum {}", self.name(t)),
            Some(Kind::Array) => "array".into(),
            Some(Kind::FuncProto) => "function".into(),
            _ => self.name(t).to_owned(),
        }
    }

    /// The values of `enum name`.
    pub fn enum_values(&self, name: &str) -> Vec<(String, u64)> {
        let id = self
            .find(name, Kind::Enum)
            .or_else(|| self.find(name, Kind::Enum64));
        let Some(t) = id.and_then(|id| self.get(id)) else {
            return Vec::new();
        };
        (0..t.vlen as usize)
            .map(|i| {
                let (name, value) = if t.kind == Some(Kind::Enum) {
                    (self.word(t, 2 * i), u64::from(self.word(t, 2 * i + 1)))
                } else {
                    let (lo, hi) = (self.word(t, 3 * i + 1), self.word(t, 3 * i + 2));
                    (self.word(t, 3 * i), u64::from(lo) | u64::from(hi) << 32)
                };
                (self.string(name).unwrap_or("").to_owned(), value)
            })
            .collect()
    }
}
