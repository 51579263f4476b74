//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): struct
//! member offsets (through anonymous structs and unions), function
//! prototypes and enum values. Enough for the tracing hooks, which have no
//! kernel headers: they read `sk_buff` fields at the offsets found here.

use std::collections::HashMap;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug)]
struct Type {
    name: u32,
    kind: u32,
    kind_flag: bool,
    vlen: u32,
    /// size or type, by kind.
    size_type: u32,
    /// Offset of the kind-specific data in `types`.
    extra: usize,
}

/// A parsed BTF blob.
pub struct Btf {
    data: Vec<u8>,
    types_at: usize,
    strs_at: usize,
    strs_len: usize,
    types: Vec<Type>,
    by_name: HashMap<String, Vec<u32>>,
}

/// A parameter of a function prototype.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub type_id: u32,
}

impl Btf {
    /// The running kernel's BTF.
    /// `XCAP_VMLINUX_BTF` overrides the path (tests use it to check the
    /// error when BTF is missing).
    pub fn vmlinux() -> Result<Btf, String> {
        let path = std::env::var("XCAP_VMLINUX_BTF").unwrap_or_else(|_| VMLINUX.to_owned());
        let data = std::fs::read(&path).map_err(|e| {
            format!(
                "kernel BTF not readable at {path} ({}): tracing hooks need a kernel built with CONFIG_DEBUG_INFO_BTF",
                e.kind()
            )
        })?;
        Btf::parse(data).map_err(|e| format!("{path}: {e}"))
    }

    pub fn parse(data: Vec<u8>) -> Result<Btf, String> {
        let u32_at = |d: &[u8], o: usize| -> Option<u32> {
            d.get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != 0xeb9f {
            return Err("not BTF (bad magic)".into());
        }
        let hdr_len = u32_at(&data, 4).unwrap() as usize;
        let type_off = u32_at(&data, 8).unwrap() as usize;
        let type_len = u32_at(&data, 12).unwrap() as usize;
        let str_off = u32_at(&data, 16).unwrap() as usize;
        let str_len = u32_at(&data, 20).unwrap() as usize;
        let types_at = hdr_len + type_off;
        let strs_at = hdr_len + str_off;
        if types_at + type_len > data.len() || strs_at + str_len > data.len() {
            return Err("truncated".into());
        }
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            kind_flag: false,
            vlen: 0,
            size_type: 0,
            extra: 0,
        }];
        let mut o = types_at;
        let end = types_at + type_len;
        while o + 12 <= end {
            let name = u32_at(&data, o).unwrap();
            let info = u32_at(&data, o + 4).unwrap();
            let size_type = u32_at(&data, o + 8).unwrap();
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            let extra = o + 12;
            let extra_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen as usize,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
                0..=19 => 0,
                k => return Err(format!("unknown BTF kind {k}")),
            };
            types.push(Type {
                name,
                kind,
                kind_flag: info >> 31 != 0,
                vlen,
                size_type,
                extra,
            });
            o = extra + extra_len;
        }
        let mut btf = Btf {
            data,
            types_at,
            strs_at,
            strs_len: str_len,
            types,
            by_name: HashMap::new(),
        };
        let _ = btf.types_at;
        let mut by_name: HashMap<String, Vec<u32>> = HashMap::new();
        for (id, t) in btf.types.iter().enumerate().skip(1) {
            if t.name != 0 {
                by_name
                    .entry(btf.str(t.name).to_owned())
                    .or_default()
                    .push(id as u32);
            }
        }
        btf.by_name = by_name;
        Ok(btf)
    }

    fn str(&self, off: u32) -> &str {
        let off = off as usize;
        if off >= self.strs_len {
            return "";
        }
        let s = &self.data[self.strs_at + off..self.strs_at + self.strs_len];
        let n = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..n]).unwrap_or("")
    }

    fn u32_at(&self, o: usize) -> u32 {
        u32::from_le_bytes(self.data[o..o + 4].try_into().unwrap())
    }

    fn find(&self, name: &str, kind: u32) -> Option<u32> {
        self.by_name
            .get(name)?
            .iter()
            .copied()
            .find(|&id| self.types[id as usize].kind == kind)
    }

    /// Skips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            let Some(t) = self.types.get(id as usize) else {
                return id;
            };
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_type
                }
                _ => return id,
            }
        }
        id
    }

    /// Byte offset of `field` in `struct name`, looking through anonymous
    /// structs and unions.
    pub fn member_offset(&self, name: &str, field: &str) -> Option<u32> {
        let id = self
            .find(name, KIND_STRUCT)
            .or_else(|| self.find(name, KIND_UNION))?;
        self.member_in(id, field, 0).map(|bits| bits / 8)
    }

    fn member_in(&self, id: u32, field: &str, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        let t = self.types.get(id as usize)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return None;
        }
        for m in 0..t.vlen as usize {
            let o = t.extra + 12 * m;
            let mname = self.u32_at(o);
            let mtype = self.u32_at(o + 4);
            let moff = self.u32_at(o + 8);
            let bits = if t.kind_flag { moff & 0xff_ffff } else { moff };
            if mname == 0 {
                if let Some(inner) = self.member_in(self.resolve(mtype), field, depth + 1) {
                    return Some(bits + inner);
                }
            } else if self.str(mname) == field {
                return Some(bits);
            }
        }
        None
    }

    /// The type id a `tp_btf` program on tracepoint `name` attaches to:
    /// its `btf_trace_<name>` typedef.
    pub fn tracepoint_id(&self, name: &str) -> Option<u32> {
        self.find(&format!("btf_trace_{name}"), KIND_TYPEDEF)
    }

    /// The type id of kernel function `name` (an `fentry` target).
    pub fn function_id(&self, name: &str) -> Option<u32> {
        self.find(name, KIND_FUNC)
    }

    /// Whether a kernel function of this name exists.
    pub fn has_function(&self, name: &str) -> bool {
        self.find(name, KIND_FUNC).is_some()
    }

    /// The parameters of kernel function `name`.
    pub fn function_params(&self, name: &str) -> Option<Vec<Param>> {
        let f = self.find(name, KIND_FUNC)?;
        let proto = self.resolve(self.types[f as usize].size_type);
        let t = self.types.get(proto as usize)?;
        if t.kind != KIND_FUNC_PROTO {
            return None;
        }
        Some(
            (0..t.vlen as usize)
                .map(|i| {
                    let o = t.extra + 8 * i;
                    Param {
                        name: self.str(self.u32_at(o)).to_owned(),
                        type_id: self.u32_at(o + 4),
                    }
                })
                .collect(),
        )
    }

    /// How many arguments tracepoint `name` passes to a `tp_btf` program
    /// (the prototype of `btf_trace_<name>`, less its context pointer):
    /// tracepoints gain arguments across kernel versions.
    pub fn tracepoint_args(&self, name: &str) -> Option<usize> {
        let typedef = self.find(&format!("btf_trace_{name}"), KIND_TYPEDEF)?;
        let ptr = self.resolve(typedef);
        let t = self.types.get(ptr as usize)?;
        if t.kind != KIND_PTR {
            return None;
        }
        let proto = self.types.get(self.resolve(t.size_type) as usize)?;
        (proto.kind == KIND_FUNC_PROTO).then(|| (proto.vlen as usize).saturating_sub(1))
    }

    /// Whether type `id` is a pointer to `struct name`.
    pub fn is_ptr_to_struct(&self, id: u32, name: &str) -> bool {
        let p = self.resolve(id);
        let Some(t) = self.types.get(p as usize) else {
            return false;
        };
        if t.kind != KIND_PTR {
            return false;
        }
        let s = self.resolve(t.size_type);
        self.types
            .get(s as usize)
            .is_some_and(|t| t.kind == KIND_STRUCT && self.str(t.name) == name)
    }

    /// The C spelling of a (simple) type, for messages.
    pub fn type_name(&self, id: u32) -> String {
        let Some(t) = self.types.get(id as usize) else {
            return "?".into();
        };
        match t.kind {
            0 => "void".into(),
            KIND_PTR => format!("{} *", self.type_name(t.size_type)),
            KIND_CONST => format!("const {}", self.type_name(t.size_type)),
            KIND_VOLATILE => format!("volatile {}", self.type_name(t.size_type)),
            KIND_STRUCT => format!("struct {}", self.str(t.name)),
            KIND_UNION => format!("union {}", self.str(t.name)),
            KIND_ENUM | KIND_ENUM64 => format!("enum {}", self.str(t.name)),
            KIND_ARRAY => "array".into(),
            KIND_FUNC_PROTO => "function".into(),
            _ => self.str(t.name).to_owned(),
        }
    }

    /// The values of `enum name`.
    pub fn enum_values(&self, name: &str) -> Vec<(String, u64)> {
        let id = self
            .find(name, KIND_ENUM)
            .or_else(|| self.find(name, KIND_ENUM64));
        let Some(id) = id else { return Vec::new() };
        let t = &self.types[id as usize];
        (0..t.vlen as usize)
            .map(|i| {
                if t.kind == KIND_ENUM {
                    let o = t.extra + 8 * i;
                    (
                        self.str(self.u32_at(o)).to_owned(),
                        self.u32_at(o + 4) as u64,
                    )
                } else {
                    let o = t.extra + 12 * i;
                    let v = self.u32_at(o + 4) as u64 | (self.u32_at(o + 8) as u64) << 32;
                    (self.str(self.u32_at(o)).to_owned(), v)
                }
            })
            .collect()
    }
}
