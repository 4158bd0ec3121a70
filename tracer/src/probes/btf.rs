//! Enum values that differ between kernel configurations (`enum vm_event_item` moves with
//! every config option that adds a counter), read from the running kernel's BTF.

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
}
