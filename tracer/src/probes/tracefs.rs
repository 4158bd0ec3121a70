//! Tracepoint format files: where each field of a tracepoint's record sits on this kernel.
//! Offsets are read at start-up rather than compiled in, so a kernel that moves a field still
//! gets the right reads (and one that changes a field's size gets a clear error).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

/// Where tracefs lives on current kernels, and where older set-ups keep it under debugfs.
const TRACEFS_MOUNT: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// The fields of one tracepoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFormat {
    pub event: String,
    pub fields: Vec<Field>,
}

impl EventFormat {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// Offset of a field the programs read with a fixed size; any other size is an error,
    /// since reading it would silently take the wrong bytes.
    pub fn offset(&self, name: &str, expected_size: u32) -> Result<u32> {
        let Some(field) = self.field(name) else {
            bail!(
                "tracepoint {} has no field `{name}` on this kernel",
                self.event
            );
        };
        if field.size != expected_size {
            bail!(
                "tracepoint {} field `{name}` is {} bytes on this kernel; cowtrace reads {expected_size}",
                self.event,
                field.size
            );
        }
        Ok(field.offset)
    }
}

/// Parses the text of `events/<category>/<name>/format`.
///
/// Field lines look like `\tfield:unsigned long address;\toffset:8;\tsize:8;\tsigned:0;`; the
/// name is the last word of the declaration, without any array suffix (`char comm[16]`).
pub fn parse_format(event: &str, text: &str) -> Result<EventFormat> {
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut declaration = None;
        let mut offset = None;
        let mut size = None;
        for part in rest
            .split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            if let Some(value) = part.strip_prefix("offset:") {
                offset = Some(value.trim().parse::<u32>().with_context(|| {
                    format!("bad offset `{value}` in format of {event}: `{line}`")
                })?);
            } else if let Some(value) = part.strip_prefix("size:") {
                size = Some(value.trim().parse::<u32>().with_context(|| {
                    format!("bad size `{value}` in format of {event}: `{line}`")
                })?);
            } else if !part.starts_with("signed:") && declaration.is_none() {
                declaration = Some(part);
            }
        }
        let (Some(declaration), Some(offset), Some(size)) = (declaration, offset, size) else {
            bail!("malformed field line in format of {event}: `{line}`");
        };
        let name = declaration
            .split_whitespace()
            .last()
            .map(|word| word.split('[').next().unwrap_or(word))
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            bail!("field without a name in format of {event}: `{line}`");
        }
        fields.push(Field { name, offset, size });
    }
    if fields.is_empty() {
        bail!("format of {event} lists no fields");
    }
    Ok(EventFormat {
        event: event.to_string(),
        fields,
    })
}

/// The mounted tracefs.
#[derive(Clone, Debug)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// Finds tracefs, mounting it at `/sys/kernel/tracing` if it is not mounted yet (aya's
    /// attach needs it too, to look up tracepoint ids).
    pub fn find_or_mount() -> Result<Tracefs> {
        for root in [TRACEFS_MOUNT, DEBUGFS_TRACING] {
            if Path::new(root).join("events").is_dir() {
                return Ok(Tracefs { root: root.into() });
            }
        }
        mount_tracefs().with_context(|| {
            format!(
                "tracefs is not mounted and mounting it failed; mount it with \
                 `sudo mount -t tracefs nodev {TRACEFS_MOUNT}` and run cowtrace again"
            )
        })?;
        if Path::new(TRACEFS_MOUNT).join("events").is_dir() {
            Ok(Tracefs {
                root: TRACEFS_MOUNT.into(),
            })
        } else {
            bail!("mounted tracefs at {TRACEFS_MOUNT} but it has no events/ directory")
        }
    }

    pub fn has_event(&self, category: &str, name: &str) -> bool {
        self.event_dir(category, name).join("format").is_file()
    }

    pub fn format(&self, category: &str, name: &str) -> Result<EventFormat> {
        let path = self.event_dir(category, name).join("format");
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "this kernel lacks the tracepoint {category}:{name} ({} unreadable)",
                path.display()
            )
        })?;
        parse_format(&format!("{category}:{name}"), &text)
    }

    fn event_dir(&self, category: &str, name: &str) -> PathBuf {
        self.root.join("events").join(category).join(name)
    }
}

fn mount_tracefs() -> Result<()> {
    use std::ffi::CString;
    let source = CString::new("nodev")?;
    let target = CString::new(TRACEFS_MOUNT)?;
    let fstype = CString::new("tracefs")?;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("mount(tracefs)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE_FAULT_USER: &str = "name: page_fault_user
ID: 116
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long address;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned long ip;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long error_code;\toffset:24;\tsize:8;\tsigned:0;

print fmt: \"address=%ps ip=%ps error_code=0x%lx\", (void *)REC->address, (void *)REC->ip, REC->error_code
";

    #[test]
    fn parses_offsets_and_sizes_of_a_real_format_file() {
        let format = parse_format("exceptions:page_fault_user", PAGE_FAULT_USER).unwrap();
        assert_eq!(format.fields.len(), 7);
        assert_eq!(format.offset("address", 8).unwrap(), 8);
        assert_eq!(format.offset("error_code", 8).unwrap(), 24);
        assert_eq!(format.field("common_pid").unwrap().size, 4);
    }

    #[test]
    fn array_and_data_loc_fields_are_named_without_their_suffix() {
        let text = "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:__data_loc char[] parent_comm;\toffset:24;\tsize:4;\tsigned:0;
\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;";
        let format = parse_format("sched:x", text).unwrap();
        assert_eq!(format.field("comm").unwrap().offset, 8);
        assert_eq!(format.field("parent_comm").unwrap().size, 4);
        assert_eq!(format.offset("group_dead", 1).unwrap(), 32);
    }

    #[test]
    fn a_field_of_unexpected_size_is_an_error_naming_it() {
        let format = parse_format("exceptions:page_fault_user", PAGE_FAULT_USER).unwrap();
        let error = format.offset("error_code", 4).unwrap_err().to_string();
        assert!(
            error.contains("error_code") && error.contains("8 bytes"),
            "{error}"
        );
        let error = format.offset("missing", 8).unwrap_err().to_string();
        assert!(error.contains("no field `missing`"), "{error}");
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        assert!(parse_format("x:y", "").is_err());
        assert!(parse_format("x:y", "\tfield:int a;\toffset:zz;\tsize:4;").is_err());
        assert!(parse_format("x:y", "\tfield:int a;\tsize:4;").is_err());
        assert!(parse_format("x:y", "\tfield:;\toffset:1;\tsize:4;").is_err());
    }
}
