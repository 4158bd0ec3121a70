//! What differs between kernel builds, read from the running kernel's BTF: enum values
//! (`enum vm_event_item` moves with every config option that adds a counter), struct sizes,
//! and the argument lists of raw tracepoints.

use anyhow::{Context as _, Result, anyhow};
use btf_rs::{Btf, Type};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    pub fn load() -> Result<KernelBtf> {
        let context = || {
            format!(
                "cannot read the kernel's BTF at {VMLINUX_BTF}: cowtrace needs a kernel built \
                 with CONFIG_DEBUG_INFO_BTF=y"
            )
        };
        // Parse from memory: parsing the sysfs file through a seeking reader costs about a
        // hundred thousand syscalls and most of a second.
        let bytes = std::fs::read(VMLINUX_BTF).with_context(context)?;
        let btf = Btf::from_bytes(&bytes)
            .map_err(|error| anyhow!("{error}"))
            .with_context(context)?;
        Ok(KernelBtf { btf })
    }

    /// Value of `member` in `enum enum_name`.
    pub fn enum_value(&self, enum_name: &str, member: &str) -> Result<u32> {
        let types = self
            .btf
            .resolve_types_by_name(enum_name)
            .map_err(|error| anyhow!("{error}"))
            .with_context(|| format!("the kernel's BTF has no `enum {enum_name}`"))?;
        for candidate in types {
            let Type::Enum(enumeration) = candidate else {
                continue;
            };
            for value in &enumeration.members {
                if self.btf.resolve_name(value).ok().as_deref() == Some(member) {
                    return Ok(value.val());
                }
            }
        }
        Err(anyhow!(
            "the kernel's BTF has no {member} in `enum {enum_name}`"
        ))
    }

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Result<u32> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|error| anyhow!("{error}"))
            .with_context(|| format!("the kernel's BTF has no `struct {name}`"))?;
        types
            .iter()
            .find_map(|candidate| match candidate {
                Type::Struct(structure) => Some(structure.size() as u32),
                _ => None,
            })
            .ok_or_else(|| anyhow!("the kernel's BTF has no `struct {name}`"))
    }

    /// The C types of a raw tracepoint's arguments (its `TP_PROTO`), spelled as `bpftool btf
    /// dump` spells them: `btf_trace_<event>` is a pointer to `void (*)(void *, args...)`, and
    /// the leading `void *` (the probe's data) is not an argument a program sees.
    pub fn tracepoint_args(&self, event: &str) -> Result<Vec<String>> {
        let name = format!("btf_trace_{event}");
        let missing = || anyhow!("the kernel's BTF has no `{name}`");
        let typedef = self
            .btf
            .resolve_types_by_name(&name)
            .map_err(|_| missing())?
            .into_iter()
            .find(|candidate| matches!(candidate, Type::Typedef(_)))
            .ok_or_else(missing)?;
        let Type::Typedef(typedef) = typedef else {
            return Err(missing());
        };
        let Ok(Type::Ptr(pointer)) = self.btf.resolve_chained_type(&typedef) else {
            return Err(missing());
        };
        let Ok(Type::FuncProto(prototype)) = self.btf.resolve_chained_type(&pointer) else {
            return Err(missing());
        };
        Ok(prototype
            .parameters
            .iter()
            .skip(1)
            .map(|parameter| match self.btf.resolve_chained_type(parameter) {
                Ok(r#type) => self.spell(&r#type, 0),
                Err(_) => "?".to_string(),
            })
            .collect())
    }

    fn spell(&self, r#type: &Type, depth: usize) -> String {
        let named = |prefix: &str, r#type: &dyn btf_rs::BtfType| {
            let name = self.btf.resolve_name(r#type).unwrap_or_default();
            format!("{prefix}{name}")
        };
        let chained = |r#type: &dyn btf_rs::BtfType| match self.btf.resolve_chained_type(r#type) {
            Ok(inner) if depth < 8 => self.spell(&inner, depth + 1),
            _ => "?".to_string(),
        };
        match r#type {
            Type::Void => "void".to_string(),
            Type::Int(int) => named("", int),
            Type::Typedef(typedef) => named("", typedef),
            Type::Struct(structure) => named("struct ", structure),
            Type::Union(union) => named("union ", union),
            Type::Enum(enumeration) => named("enum ", enumeration),
            Type::Fwd(forward) => named("struct ", forward),
            Type::Ptr(pointer) => format!("{} *", chained(pointer)),
            Type::Const(qualified) => chained(qualified),
            Type::Volatile(qualified) => chained(qualified),
            _ => "?".to_string(),
        }
    }
}
