//! The `--json` output: JSON lines, one object per line, each with a `type`. The schema is
//! documented in `docs/json-schema.md`; bump [`SCHEMA_VERSION`] on incompatible changes.
//!
//! A file starts with one `start` line, then `fault`, `fork`, `exec` and `exit` lines in the
//! order the kernel produced them, and ends with one `end` line holding the loss counters.

use cowtrace_common::{
    FaultKind, ForkKind,
    fault::{error_code, flags},
};
use serde::{
    Deserialize, Deserializer as _, Serialize,
    de::{
        self, DeserializeSeed, IntoDeserializer as _, MapAccess, Visitor,
        value::{BorrowedStrDeserializer, MapAccessDeserializer},
    },
};

use super::{Record, comm_to_string};
use crate::probes::syscalls::syscall_name;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JsonLine {
    Start(StartLine),
    Fault(FaultLine),
    Fork(ForkLine),
    Exec(ExecLine),
    Exit(ExitLine),
    Syscall(SyscallLine),
    End(EndLine),
}

impl JsonLine {
    /// Parses one line: the same result as `serde_json::from_str`, in about half the time.
    ///
    /// serde reads an internally tagged enum by first buffering the whole object (the tag could
    /// come last), which is most of the time it takes to read a large trace. cowtrace writes
    /// `type` first, so such a line is read straight into its struct. Any other line, with the
    /// tag elsewhere or not a line at all, goes through the derived `Deserialize`, which then
    /// also words the error.
    pub fn from_line(text: &str) -> serde_json::Result<JsonLine> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let tag_first = (&mut deserializer)
            .deserialize_map(TagFirst)
            .and_then(|line| deserializer.end().map(|()| line));
        match tag_first {
            Ok(Some(line)) => Ok(line),
            _ => serde_json::from_str(text),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartLine {
    pub schema: u32,
    pub cowtrace_version: String,
    /// `uname -r` of the traced kernel.
    pub kernel: String,
    pub page_size: u64,
    /// `command`, `pid` or `all`.
    pub mode: String,
    /// The traced command line (mode `command`).
    pub command: Vec<String>,
    /// Processes traced from the start (the command's pid, or the `-p` pids).
    pub pids: Vec<u32>,
    /// CLOCK_MONOTONIC at start: record times (`time_ns`) are on this clock.
    pub monotonic_ns: u64,
    /// Wall clock at start, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub probes_attached: Vec<String>,
    pub probes_off: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultLine {
    pub time_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub address: u64,
    /// A [`FaultKind`] name: `anon_first_touch`, `zero_page`, `cow_copy`, `cow_reuse`,
    /// `file_minor`, `file_major`, `file_private_copy`, `write_shared`, `gup_fault`, `other`;
    /// refined by the fault's mapping where the model knows it (see `kernel_kind`).
    pub kind: String,
    /// The kernel side's own classification, before the mapping refined it. `null` in files
    /// written before this field existed.
    #[serde(default)]
    pub kernel_kind: Option<String>,
    /// The mapping the address lies in: the mapped file's path, or `[heap]`, `[stack]`,
    /// `[anon]`, `[anon shared]`, `[vdso]`...; `null` when no known mapping holds it.
    #[serde(default)]
    pub mapping: Option<String>,
    /// Byte offset in the mapped file of `address` (file mappings only).
    #[serde(default)]
    pub file_offset: Option<u64>,
    pub latency_ns: u64,
    pub error_code: u32,
    pub write: bool,
    pub present: bool,
    pub user_mode: bool,
    pub major: bool,
    /// PFN of the page allocated in the fault (the copy, or the new page); null if none.
    pub new_pfn: Option<u64>,
    /// Order of that allocation (0: 4 KiB, 9: 2 MiB); null if none.
    pub alloc_order: Option<u32>,
    pub alloc_count: u32,
    /// Raw flag bits (see cowtrace-common `fault::flags`).
    pub flags: u32,
    /// Pages in the ranges fault-around scanned in the fault (an upper bound of the pages it
    /// mapped, the faulting one included).
    #[serde(default)]
    pub fault_around_window_pages: u32,
    /// Pages the fault added to the page cache: read from disk (its own page, or readahead).
    #[serde(default)]
    pub cache_fill_pages: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForkLine {
    pub time_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub child_pid: u32,
    pub child_tid: u32,
    pub clone_flags: u64,
    /// `fork`, `shared_vm` (vfork, posix_spawn: no copy-on-write) or `thread`.
    pub fork_kind: String,
    pub comm: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecLine {
    pub time_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub old_tid: u32,
    pub comm: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitLine {
    pub time_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub group_dead: bool,
    pub comm: String,
}

/// A memory-map or fork syscall of a traced task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyscallLine {
    /// When it returned.
    pub time_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    /// `mmap`, `munmap`, `mremap`, `mprotect`, `madvise`, `brk`, `clone`, `clone3`, `fork`,
    /// `vfork` (or `nr_N` for a number this build does not name).
    pub syscall: String,
    /// The syscall's arguments, as many as it takes.
    pub args: Vec<u64>,
    /// Result: negative errno on failure; the new pid for a fork, in the parent.
    pub ret: i64,
    pub latency_ns: u64,
}

/// Totals at the end: `records_received + records_dropped == records_produced`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndLine {
    pub records_produced: u64,
    pub records_received: u64,
    pub records_dropped: u64,
    /// Faults that started but never completed (SIGSEGV, thread death mid-fault).
    pub faults_incomplete: u64,
    /// Faults not followed because the per-thread state map was full.
    pub inflight_map_full: u64,
    /// Children not traced because the traced set was full.
    pub traced_set_full: u64,
    pub duration_ns: u64,
    /// Exit code of the traced command (mode `command`), null otherwise or if killed.
    pub command_exit_code: Option<i32>,
}

impl FaultLine {
    pub fn fault_kind(&self) -> Option<FaultKind> {
        FaultKind::from_name(&self.kind)
    }

    /// Adds what the model learnt from the fault's mapping: the refined kind and the mapping.
    pub fn attributed(
        mut self,
        kind: Option<FaultKind>,
        mapping: Option<&str>,
        file_offset: Option<u64>,
    ) -> FaultLine {
        self.kind = kind_name(kind);
        self.mapping = mapping.map(str::to_string);
        self.file_offset = file_offset;
        self
    }
}

fn kind_name(kind: Option<FaultKind>) -> String {
    kind.map_or("unknown", FaultKind::name).to_string()
}

impl From<&Record> for JsonLine {
    fn from(record: &Record) -> JsonLine {
        match record {
            Record::Fault(r) => {
                let allocated = r.alloc_count > 0;
                JsonLine::Fault(FaultLine {
                    time_ns: r.header.time_ns,
                    cpu: r.header.cpu,
                    pid: r.header.pid,
                    tid: r.header.tid,
                    address: r.address,
                    kind: kind_name(FaultKind::from_u32(r.kind)),
                    kernel_kind: Some(kind_name(FaultKind::from_u32(r.kind))),
                    mapping: None,
                    file_offset: None,
                    latency_ns: r.latency_ns,
                    error_code: r.error_code,
                    write: r.error_code & error_code::WRITE != 0,
                    present: r.error_code & error_code::PRESENT != 0,
                    user_mode: r.flags & flags::KERNEL_MODE == 0 && r.flags & flags::NO_START == 0,
                    major: r.flags & (flags::MAJOR | flags::CACHE_FILL) != 0,
                    new_pfn: allocated.then_some(r.new_pfn),
                    alloc_order: allocated.then_some(r.alloc_order),
                    alloc_count: r.alloc_count,
                    flags: r.flags,
                    fault_around_window_pages: r.fault_around_window_pages,
                    cache_fill_pages: r.cache_fill_pages,
                })
            }
            Record::Fork(r) => JsonLine::Fork(ForkLine {
                time_ns: r.header.time_ns,
                cpu: r.header.cpu,
                pid: r.header.pid,
                tid: r.header.tid,
                child_pid: r.child_pid,
                child_tid: r.child_tid,
                clone_flags: r.clone_flags,
                fork_kind: ForkKind::from_clone_flags(r.clone_flags).name().to_string(),
                comm: comm_to_string(&r.comm),
            }),
            Record::Exec(r) => JsonLine::Exec(ExecLine {
                time_ns: r.header.time_ns,
                cpu: r.header.cpu,
                pid: r.header.pid,
                tid: r.header.tid,
                old_tid: r.old_tid,
                comm: comm_to_string(&r.comm),
            }),
            Record::Syscall(r) => JsonLine::Syscall(SyscallLine {
                time_ns: r.header.time_ns,
                cpu: r.header.cpu,
                pid: r.header.pid,
                tid: r.header.tid,
                syscall: syscall_name(r.syscall_nr)
                    .map_or_else(|| format!("nr_{}", r.syscall_nr), str::to_string),
                args: r.args[..(r.arg_count as usize).min(r.args.len())].to_vec(),
                ret: r.ret,
                latency_ns: r.latency_ns,
            }),
            Record::Exit(r) => JsonLine::Exit(ExitLine {
                time_ns: r.header.time_ns,
                cpu: r.header.cpu,
                pid: r.header.pid,
                tid: r.header.tid,
                group_dead: r.group_dead != 0,
                comm: comm_to_string(&r.comm),
            }),
        }
    }
}

/// A line whose first key is `type`, read into the struct the tag names; `None` (or an error)
/// for anything else, left to the derived `Deserialize`.
struct TagFirst;

impl<'de> Visitor<'de> for TagFirst {
    type Value = Option<JsonLine>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object starting with its `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<JsonLine>, A::Error> {
        if map.next_key::<&str>()? != Some("type") {
            return Ok(None);
        }
        let tag: &str = map.next_value()?;
        let rest = MapAccessDeserializer::new(AfterTag(map));
        // The names `#[serde(tag = "type", rename_all = "snake_case")]` gives the variants.
        Ok(Some(match tag {
            "start" => JsonLine::Start(StartLine::deserialize(rest)?),
            "fault" => JsonLine::Fault(FaultLine::deserialize(rest)?),
            "fork" => JsonLine::Fork(ForkLine::deserialize(rest)?),
            "exec" => JsonLine::Exec(ExecLine::deserialize(rest)?),
            "exit" => JsonLine::Exit(ExitLine::deserialize(rest)?),
            "syscall" => JsonLine::Syscall(SyscallLine::deserialize(rest)?),
            "end" => JsonLine::End(EndLine::deserialize(rest)?),
            _ => return Ok(None),
        }))
    }
}

/// The rest of a line's object after its tag. A second `type` key is an error, as it is for
/// the derived `Deserialize` (a struct alone would ignore it as an unknown field).
struct AfterTag<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for AfterTag<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(NotTheTag(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// Reads a key as text, refuses `type`, and hands it on to the struct's own key seed.
struct NotTheTag<K>(K);

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for NotTheTag<K> {
    type Value = K::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<K::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for NotTheTag<K> {
    type Value = K::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<K::Value, E> {
        if key == "type" {
            return Err(E::duplicate_field("type"));
        }
        self.0.deserialize(BorrowedStrDeserializer::new(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<K::Value, E> {
        if key == "type" {
            return Err(E::duplicate_field("type"));
        }
        self.0.deserialize(key.into_deserializer())
    }
}

#[cfg(test)]
mod tests {
    use cowtrace_common::{FaultRecord, RecordHeader};

    use super::*;

    #[test]
    fn fault_line_carries_kind_name_and_decoded_bits() {
        let record = Record::Fault(FaultRecord {
            header: RecordHeader::fault(42, 1, 7, 8),
            address: 0x7f12_3456_7000,
            latency_ns: 2_000,
            new_pfn: 0x1_2345,
            error_code: error_code::USER | error_code::WRITE | error_code::PRESENT,
            flags: flags::ALLOCATED,
            kind: FaultKind::CowCopy as u32,
            alloc_order: 0,
            alloc_count: 1,
            fault_around_window_pages: 0,
            cache_fill_pages: 0,
            reserved: 0,
        });
        let text = serde_json::to_string(&JsonLine::from(&record)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "fault");
        assert_eq!(value["kind"], "cow_copy");
        assert_eq!(value["write"], true);
        assert_eq!(value["present"], true);
        assert_eq!(value["user_mode"], true);
        assert_eq!(value["new_pfn"], 0x1_2345);
        assert_eq!(value["address"], 0x7f12_3456_7000u64);
        let back: JsonLine = serde_json::from_str(&text).unwrap();
        let JsonLine::Fault(fault) = back else {
            panic!("not a fault line: {text}")
        };
        assert_eq!(fault.fault_kind(), Some(FaultKind::CowCopy));
    }

    #[test]
    fn fault_without_allocation_has_null_pfn() {
        let record = Record::Fault(FaultRecord {
            header: RecordHeader::fault(1, 0, 7, 7),
            kind: FaultKind::CowReuse as u32,
            ..Default::default()
        });
        let value = serde_json::to_value(JsonLine::from(&record)).unwrap();
        assert!(value["new_pfn"].is_null());
        assert!(value["alloc_order"].is_null());
    }

    #[test]
    fn fault_line_carries_the_mapping_and_both_kinds() {
        let record = Record::Fault(FaultRecord {
            header: RecordHeader::fault(1, 0, 7, 7),
            address: 0x7f00_0000_3000,
            error_code: error_code::USER | error_code::WRITE | error_code::PRESENT,
            kind: FaultKind::CowReuse as u32,
            fault_around_window_pages: 0,
            cache_fill_pages: 3,
            ..Default::default()
        });
        let JsonLine::Fault(line) = JsonLine::from(&record) else {
            panic!("not a fault line")
        };
        let line = line.attributed(
            Some(FaultKind::WriteShared),
            Some("/data/shared.db"),
            Some(0x3000),
        );
        let value = serde_json::to_value(JsonLine::Fault(line)).unwrap();
        assert_eq!(value["kind"], "write_shared");
        assert_eq!(value["kernel_kind"], "cow_reuse");
        assert_eq!(value["mapping"], "/data/shared.db");
        assert_eq!(value["file_offset"], 0x3000);
        assert_eq!(value["cache_fill_pages"], 3);
    }

    #[test]
    fn fault_lines_without_the_newer_fields_still_parse() {
        let old = r#"{"type":"fault","time_ns":1,"cpu":0,"pid":5,"tid":5,"address":4096,"kind":"zero_page","latency_ns":2,"error_code":4,"write":false,"present":false,"user_mode":true,"major":false,"new_pfn":null,"alloc_order":null,"alloc_count":0,"flags":0}"#;
        let JsonLine::Fault(line) = serde_json::from_str(old).unwrap() else {
            panic!("not a fault line")
        };
        assert_eq!(line.fault_kind(), Some(FaultKind::ZeroPage));
        assert_eq!((line.kernel_kind, line.mapping), (None, None));
        assert_eq!(line.fault_around_window_pages, 0);
    }

    #[test]
    fn from_line_reads_what_the_derived_deserialize_reads() {
        let same = |text: &str| {
            let fast = JsonLine::from_line(text).map_err(|error| error.to_string());
            let derived = serde_json::from_str::<JsonLine>(text).map_err(|error| error.to_string());
            assert_eq!(fast, derived, "{text}");
            fast
        };
        let JsonLine::Fault(fault) = JsonLine::from(&Record::Fault(FaultRecord {
            header: RecordHeader::fault(3, 1, 7, 8),
            address: 0x7f00_0000_3000,
            kind: FaultKind::FileMinor as u32,
            ..Default::default()
        })) else {
            panic!("not a fault line")
        };
        let lines = [
            JsonLine::Start(StartLine {
                schema: SCHEMA_VERSION,
                cowtrace_version: "0.1.0".into(),
                kernel: "6.1".into(),
                page_size: 4096,
                mode: "command".into(),
                command: vec!["sh".into(), "-c".into(), "echo \"hi\"".into()],
                pids: vec![7],
                monotonic_ns: 1,
                unix_ms: 2,
                probes_attached: vec!["sched:sched_process_fork".into()],
                probes_off: vec![],
            }),
            JsonLine::Fault(fault.attributed(
                Some(FaultKind::FileMinor),
                Some("/usr/lib/libc.so.6"),
                Some(0x3000),
            )),
            JsonLine::Fork(ForkLine {
                time_ns: 4,
                cpu: 0,
                pid: 7,
                tid: 7,
                child_pid: 9,
                child_tid: 9,
                clone_flags: 0x11,
                fork_kind: "fork".into(),
                comm: "sh".into(),
            }),
            JsonLine::Exec(ExecLine {
                time_ns: 5,
                cpu: 1,
                pid: 9,
                tid: 9,
                old_tid: 9,
                comm: "ls".into(),
            }),
            JsonLine::Exit(ExitLine {
                time_ns: 6,
                cpu: 1,
                pid: 9,
                tid: 9,
                group_dead: true,
                comm: "ls".into(),
            }),
            JsonLine::Syscall(SyscallLine {
                time_ns: 7,
                cpu: 0,
                pid: 7,
                tid: 7,
                syscall: "mmap".into(),
                args: vec![0, 4096, 3],
                ret: -12,
                latency_ns: 800,
            }),
            JsonLine::End(EndLine {
                records_produced: 6,
                command_exit_code: Some(1),
                ..Default::default()
            }),
        ];
        for line in lines {
            let text = serde_json::to_string(&line).unwrap();
            assert_eq!(same(&format!(" {text}\t")), Ok(line.clone()), "{text}");
            assert_eq!(same(&text), Ok(line), "{text}");
            assert!(same(&format!("{text}x")).is_err());
            assert!(same(&text[..text.len() - 1]).is_err());
        }
        // The tag elsewhere, escaped, twice, unknown or of the wrong type; an escaped field.
        let end = r#""records_produced":1,"records_received":1,"records_dropped":0,"faults_incomplete":0,"inflight_map_full":0,"traced_set_full":0,"duration_ns":2,"command_exit_code":null"#;
        assert!(same(&format!(r#"{{{end},"type":"end"}}"#)).is_ok());
        assert!(same(&format!(r#"{{"typ\u0065":"end",{end}}}"#)).is_ok());
        assert!(same(&format!(r#"{{"type":"\u0065nd",{end}}}"#)).is_ok());
        let escaped = end.replace("duration_ns", r"dur\u0061tion_ns");
        assert!(same(&format!(r#"{{"type":"end",{escaped}}}"#)).is_ok());
        assert!(same(&format!(r#"{{"type":"end",{end},"type":"end"}}"#)).is_err());
        assert!(same(&format!(r#"{{"type":"End",{end}}}"#)).is_err());
        assert!(same(&format!(r#"{{"type":1,{end}}}"#)).is_err());
        assert!(same(r#"["end"]"#).is_err());
        assert!(same("").is_err());
    }

    #[test]
    fn end_line_round_trips() {
        let end = JsonLine::End(EndLine {
            records_produced: 10,
            records_received: 9,
            records_dropped: 1,
            ..Default::default()
        });
        let text = serde_json::to_string(&end).unwrap();
        assert!(text.starts_with("{\"type\":\"end\""), "{text}");
        assert_eq!(serde_json::from_str::<JsonLine>(&text).unwrap(), end);
    }
}
