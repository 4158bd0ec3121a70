//! Reading a `--json` trace file back: one `start` line, records, one `end` line.
//!
//! Every problem is an error naming the line, never a panic. A file without its `end` line is
//! *truncated* (the tracer was killed, the disk filled up, the file was cut): it is refused
//! with [`TraceError::Truncated`] unless the caller allows partial traces, because its loss
//! counters are missing and every total in it is a lower bound. When allowed, the records read
//! so far are kept (a last line cut off mid-write is dropped) and the report says so.

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read},
    path::Path,
};

use crate::records::json::{
    EndLine, ExecLine, ExitLine, FaultLine, ForkLine, JsonLine, SCHEMA_VERSION, StartLine,
    SyscallLine,
};

/// A trace file, read whole.
#[derive(Clone, Debug)]
pub struct TraceFile {
    pub start: StartLine,
    /// Every line between `start` and `end`, in file order.
    pub events: Vec<Event>,
    /// `None` when the file is truncated (and partial traces were allowed).
    pub end: Option<EndLine>,
    /// Why the file is incomplete, when it is.
    pub truncation: Option<Truncation>,
}

/// One line between `start` and `end`.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Fault(FaultLine),
    Fork(ForkLine),
    Exec(ExecLine),
    Exit(ExitLine),
    Syscall(SyscallLine),
}

impl Event {
    pub fn time_ns(&self) -> u64 {
        match self {
            Event::Fault(line) => line.time_ns,
            Event::Fork(line) => line.time_ns,
            Event::Exec(line) => line.time_ns,
            Event::Exit(line) => line.time_ns,
            Event::Syscall(line) => line.time_ns,
        }
    }
}

/// How a partial trace ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Lines read whole (the `start` line included).
    pub complete_lines: usize,
    /// A last line cut off mid-write (no newline, not valid JSON) was dropped: its number.
    pub dropped_partial_line: Option<usize>,
}

impl Truncation {
    pub fn describe(&self) -> String {
        let mut text = format!(
            "the trace is truncated: it has no `end` line (the tracer did not finish writing \
             it), so records produced and dropped are unknown and every count below is a \
             lower bound; {} complete lines were read",
            self.complete_lines
        );
        if let Some(line) = self.dropped_partial_line {
            text.push_str(&format!(
                ", and line {line}, cut off mid-write, was left out"
            ));
        }
        text
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read the trace: {0}")]
    Io(#[from] std::io::Error),
    #[error("the trace is empty: a cowtrace trace starts with a `start` line")]
    Empty,
    #[error("line {line} is not a cowtrace JSON line: {message}")]
    Malformed { line: usize, message: String },
    #[error(
        "line 1 is a `{found}` line, not the `start` line: this is not a whole cowtrace trace \
         (was its beginning cut off?)"
    )]
    NoStart { found: String },
    #[error(
        "the trace has schema {found}, this cowtrace reads schema {SCHEMA_VERSION}: render it \
         with the cowtrace version that recorded it ({version})"
    )]
    Schema { found: u32, version: String },
    #[error("line {line} is a second `start` line: two traces were concatenated")]
    SecondStart { line: usize },
    #[error("line {line} comes after the `end` line: the file holds more than one trace")]
    AfterEnd { line: usize },
    #[error(
        "{}; give --partial to render what it has",
        .0.describe()
    )]
    Truncated(Truncation),
}

/// Whether a trace without its `end` line is an error or rendered with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partial {
    Refuse,
    Allow,
}

pub fn read_path(path: &Path, partial: Partial) -> Result<TraceFile, TraceError> {
    read(File::open(path)?, partial, |_| {})
}

/// Reads a trace; `progress` is told how many bytes have been read so far.
pub fn read(
    reader: impl Read,
    partial: Partial,
    mut progress: impl FnMut(u64),
) -> Result<TraceFile, TraceError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut trace: Option<TraceFile> = None;
    let mut bytes_read = 0u64;
    let mut line_number = 0usize;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer)?;
        if read == 0 {
            break;
        }
        bytes_read += read as u64;
        line_number += 1;
        if line_number.is_multiple_of(4096) {
            progress(bytes_read);
        }
        let ends_with_newline = buffer.last() == Some(&b'\n');
        let text = String::from_utf8_lossy(&buffer);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let parsed: Result<JsonLine, _> = serde_json::from_str(text);
        let line = match parsed {
            Ok(line) => line,
            // Only the very last line can be cut off by a writer that stopped.
            Err(_) if !ends_with_newline && trace.is_some() => {
                let complete_lines = line_number - 1;
                return finish_truncated(
                    trace,
                    partial,
                    Truncation {
                        complete_lines,
                        dropped_partial_line: Some(line_number),
                    },
                );
            }
            Err(error) => {
                return Err(TraceError::Malformed {
                    line: line_number,
                    message: error.to_string(),
                });
            }
        };
        let Some(current) = trace.as_mut() else {
            let JsonLine::Start(start) = line else {
                return Err(TraceError::NoStart {
                    found: line_type(&line).to_string(),
                });
            };
            if start.schema != SCHEMA_VERSION {
                return Err(TraceError::Schema {
                    found: start.schema,
                    version: start.cowtrace_version,
                });
            }
            trace = Some(TraceFile {
                start,
                events: Vec::new(),
                end: None,
                truncation: None,
            });
            continue;
        };
        if current.end.is_some() {
            return Err(TraceError::AfterEnd { line: line_number });
        }
        match line {
            JsonLine::Start(_) => return Err(TraceError::SecondStart { line: line_number }),
            JsonLine::End(end) => current.end = Some(end),
            JsonLine::Fault(line) => current.events.push(Event::Fault(line)),
            JsonLine::Fork(line) => current.events.push(Event::Fork(line)),
            JsonLine::Exec(line) => current.events.push(Event::Exec(line)),
            JsonLine::Exit(line) => current.events.push(Event::Exit(line)),
            JsonLine::Syscall(line) => current.events.push(Event::Syscall(line)),
        }
    }
    progress(bytes_read);
    match trace {
        None => Err(TraceError::Empty),
        Some(trace) if trace.end.is_some() => Ok(trace),
        Some(_) => finish_truncated(
            trace,
            partial,
            Truncation {
                complete_lines: line_number,
                dropped_partial_line: None,
            },
        ),
    }
}

fn finish_truncated(
    trace: Option<TraceFile>,
    partial: Partial,
    truncation: Truncation,
) -> Result<TraceFile, TraceError> {
    match (trace, partial) {
        (Some(mut trace), Partial::Allow) => {
            trace.truncation = Some(truncation);
            Ok(trace)
        }
        _ => Err(TraceError::Truncated(truncation)),
    }
}

fn line_type(line: &JsonLine) -> &'static str {
    match line {
        JsonLine::Start(_) => "start",
        JsonLine::Fault(_) => "fault",
        JsonLine::Fork(_) => "fork",
        JsonLine::Exec(_) => "exec",
        JsonLine::Exit(_) => "exit",
        JsonLine::Syscall(_) => "syscall",
        JsonLine::End(_) => "end",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"type":"start","schema":1,"cowtrace_version":"0.1.0","kernel":"6.1","page_size":4096,"mode":"command","command":["sh"],"pids":[7],"monotonic_ns":1,"unix_ms":2,"probes_attached":[],"probes_off":[]}"#;
    const FAULT: &str = r#"{"type":"fault","time_ns":5,"cpu":0,"pid":7,"tid":7,"address":4096,"kind":"cow_copy","latency_ns":9,"error_code":7,"write":true,"present":true,"user_mode":true,"major":false,"new_pfn":3,"alloc_order":0,"alloc_count":1,"flags":1}"#;
    const END: &str = r#"{"type":"end","records_produced":1,"records_received":1,"records_dropped":0,"faults_incomplete":0,"inflight_map_full":0,"traced_set_full":0,"duration_ns":10,"command_exit_code":0}"#;

    fn read_text(text: &str, partial: Partial) -> Result<TraceFile, TraceError> {
        read(text.as_bytes(), partial, |_| {})
    }

    #[test]
    fn reads_a_whole_trace() {
        let trace = read_text(&format!("{START}\n{FAULT}\n{END}\n"), Partial::Refuse).unwrap();
        assert_eq!(trace.events.len(), 1);
        assert_eq!(trace.end.unwrap().records_produced, 1);
        assert!(trace.truncation.is_none());
    }

    #[test]
    fn names_the_malformed_line() {
        let error = read_text(
            &format!("{START}\n{FAULT}\n{{\"type\":\n{END}\n"),
            Partial::Allow,
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("line 3 is not a cowtrace JSON line"),
            "{message}"
        );
        let error = read_text(
            &format!(
                "{START}\n{}\n{END}\n",
                FAULT.replace("cow_copy\"", "cow_copy\",\"x")
            ),
            Partial::Refuse,
        )
        .unwrap_err();
        assert!(error.to_string().starts_with("line 2 "), "{error}");
    }

    #[test]
    fn a_missing_end_is_truncation_refused_unless_partial_is_allowed() {
        let text = format!("{START}\n{FAULT}\n{}", &FAULT[..40]);
        let error = read_text(&text, Partial::Refuse).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("truncated"), "{message}");
        assert!(message.contains("line 3, cut off mid-write"), "{message}");
        assert!(message.contains("--partial"), "{message}");
        let trace = read_text(&text, Partial::Allow).unwrap();
        assert_eq!(trace.events.len(), 1);
        assert_eq!(
            trace.truncation,
            Some(Truncation {
                complete_lines: 2,
                dropped_partial_line: Some(3)
            })
        );
        let trace = read_text(&format!("{START}\n{FAULT}\n"), Partial::Allow).unwrap();
        assert_eq!(trace.truncation.unwrap().dropped_partial_line, None);
    }

    #[test]
    fn refuses_what_is_not_one_whole_trace() {
        assert!(matches!(
            read_text("", Partial::Allow),
            Err(TraceError::Empty)
        ));
        assert!(matches!(
            read_text("\n\n", Partial::Allow),
            Err(TraceError::Empty)
        ));
        assert!(matches!(
            read_text(&format!("{FAULT}\n{END}\n"), Partial::Allow),
            Err(TraceError::NoStart { .. })
        ));
        assert!(matches!(
            read_text(&format!("{START}\n{START}\n"), Partial::Allow),
            Err(TraceError::SecondStart { line: 2 })
        ));
        assert!(matches!(
            read_text(&format!("{START}\n{END}\n{FAULT}\n"), Partial::Allow),
            Err(TraceError::AfterEnd { line: 3 })
        ));
        let error = read_text(
            &format!("{}\n{END}\n", START.replace("\"schema\":1", "\"schema\":9")),
            Partial::Allow,
        )
        .unwrap_err();
        assert!(error.to_string().contains("schema 9"), "{error}");
        // Not JSON at all, not even UTF-8.
        let error = read(&b"\xff\xfe\x00binary\n"[..], Partial::Allow, |_| {}).unwrap_err();
        assert!(error.to_string().starts_with("line 1 "), "{error}");
    }
}
