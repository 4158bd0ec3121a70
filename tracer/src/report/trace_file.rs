//! Reading a `--json` trace file back: one `start` line, records, one `end` line.
//!
//! Every problem is an error naming the line, never a panic. A file without its `end` line is
//! *truncated* (the tracer was killed, the disk filled up, the file was cut): it is refused
//! with [`TraceError::Truncated`] unless the caller allows partial traces, because its loss
//! counters are missing and every total in it is a lower bound. When allowed, the records read
//! so far are kept (a last line cut off mid-write is dropped) and the report says so.

use std::{
    borrow::Cow, collections::VecDeque, fs::File, io::Read, num::NonZeroUsize, path::Path,
    sync::mpsc,
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

/// Whole lines handed to a parsing thread at a time: enough that handing them over costs
/// nothing next to parsing them.
const CHUNK_BYTES: usize = 4 << 20;

/// Parsing threads at most: one reading thread checking the lines keeps up with about that many.
const MAX_PARSERS: usize = 4;

/// Reads a trace; `progress` is told how many bytes have been read so far.
///
/// Parsing the JSON is most of the work, so it is spread over threads: this one reads chunks
/// of whole lines and hands them out in turn, then takes the parsed lines back in file order
/// and checks them as one sequence, so every error is the one reading line by line would give.
pub fn read(
    reader: impl Read,
    partial: Partial,
    progress: impl FnMut(u64),
) -> Result<TraceFile, TraceError> {
    read_in_chunks(reader, CHUNK_BYTES, partial, progress)
}

fn read_in_chunks(
    reader: impl Read,
    chunk_bytes: usize,
    partial: Partial,
    mut progress: impl FnMut(u64),
) -> Result<TraceFile, TraceError> {
    let parsers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_PARSERS);
    std::thread::scope(|scope| {
        let parsers: Vec<mpsc::Sender<ParseJob>> = (0..parsers)
            .map(|_| {
                let (jobs, queue) = mpsc::channel::<ParseJob>();
                scope.spawn(move || {
                    for (chunk, done) in queue {
                        // Nobody waits for it any more after an error: nothing to do then.
                        let _ = done.send(parse_chunk(&chunk));
                    }
                });
                jobs
            })
            .collect();
        let mut checker = Checker::new(partial);
        // Chunks being parsed, in file order, and a read error in its place among them. Two
        // per parser: one to work on, one waiting, and memory bounded.
        let mut pending = VecDeque::new();
        let mut bytes_read = 0u64;
        for (number, chunk) in Chunks::new(reader, chunk_bytes).enumerate() {
            if pending.len() == 2 * parsers.len()
                && let Some(oldest) = pending.pop_front()
            {
                checker.check(parsed(oldest)?)?;
            }
            pending.push_back(chunk.and_then(|chunk| {
                bytes_read += chunk.len() as u64;
                progress(bytes_read);
                let (done, parsed) = mpsc::channel();
                parsers[number % parsers.len()]
                    .send((chunk, done))
                    .map_err(|_| parser_stopped())?;
                Ok(parsed)
            }));
        }
        while let Some(oldest) = pending.pop_front() {
            checker.check(parsed(oldest)?)?;
        }
        checker.finish()
    })
}

/// A chunk of whole lines and where its parsed lines go.
type ParseJob = (Vec<u8>, mpsc::Sender<ParsedChunk>);

/// The parsed lines of a chunk, once parsed.
fn parsed(
    pending: std::io::Result<mpsc::Receiver<ParsedChunk>>,
) -> Result<ParsedChunk, TraceError> {
    Ok(pending?.recv().map_err(|_| parser_stopped())?)
}

fn parser_stopped() -> std::io::Error {
    std::io::Error::other("a thread parsing the trace stopped")
}

/// The lines of a reader, about `size` bytes at a time, each chunk ending with a newline but
/// the last, which holds whatever follows the file's last newline.
struct Chunks<R> {
    reader: R,
    size: usize,
    /// What was read after the last newline: the beginning of the next chunk.
    carry: Vec<u8>,
    /// A read error, returned after the whole lines read before it.
    error: Option<std::io::Error>,
    done: bool,
}

impl<R: Read> Chunks<R> {
    fn new(reader: R, size: usize) -> Self {
        Chunks {
            reader,
            size,
            carry: Vec::new(),
            error: None,
            done: false,
        }
    }
}

impl<R: Read> Iterator for Chunks<R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            self.done = true;
            return Some(Err(error));
        }
        if self.done {
            return None;
        }
        let mut chunk = std::mem::take(&mut self.carry);
        loop {
            let searched = chunk.len();
            chunk.reserve(self.size);
            match (&mut self.reader)
                .take(self.size as u64)
                .read_to_end(&mut chunk)
            {
                Ok(0) => {
                    self.done = true;
                    return (!chunk.is_empty()).then_some(Ok(chunk));
                }
                Ok(_) => {}
                Err(error) => self.error = Some(error),
            }
            let last_newline = chunk[searched..]
                .iter()
                .rposition(|&byte| byte == b'\n')
                .map(|at| searched + at);
            match (last_newline, self.error.is_some()) {
                (Some(at), _) => {
                    self.carry = chunk.split_off(at + 1);
                    return Some(Ok(chunk));
                }
                (None, true) => {
                    self.done = true;
                    return self.error.take().map(Err);
                }
                // A line longer than a chunk: read on.
                (None, false) => {}
            }
        }
    }
}

/// One line, parsed.
enum Parsed {
    Blank,
    Line(JsonLine),
    Invalid(serde_json::Error),
}

struct ParsedChunk {
    lines: Vec<Parsed>,
    /// Whether its last line is whole: only the file's last line may lack its newline.
    ends_with_newline: bool,
}

fn parse_chunk(chunk: &[u8]) -> ParsedChunk {
    // The empty piece `split` gives after a final newline is no line.
    let lines = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    ParsedChunk {
        lines: lines.split(|&byte| byte == b'\n').map(parse_line).collect(),
        ends_with_newline: chunk.ends_with(b"\n"),
    }
}

fn parse_line(bytes: &[u8]) -> Parsed {
    // `from_utf8_lossy` alone checks valid text (every line, nearly always) much more slowly
    // than `from_utf8`.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let text = text.trim();
    if text.is_empty() {
        return Parsed::Blank;
    }
    match JsonLine::from_line(text) {
        Ok(line) => Parsed::Line(line),
        Err(error) => Parsed::Invalid(error),
    }
}

/// The lines of a trace in file order, checked to make one whole trace.
struct Checker {
    partial: Partial,
    trace: Option<TraceFile>,
    line_number: usize,
    /// The last line, cut off mid-write: its number.
    cut_off: Option<usize>,
}

impl Checker {
    fn new(partial: Partial) -> Self {
        Checker {
            partial,
            trace: None,
            line_number: 0,
            cut_off: None,
        }
    }

    fn check(&mut self, chunk: ParsedChunk) -> Result<(), TraceError> {
        let count = chunk.lines.len();
        for (index, parsed) in chunk.lines.into_iter().enumerate() {
            self.line_number += 1;
            self.check_line(parsed, chunk.ends_with_newline || index + 1 < count)?;
        }
        Ok(())
    }

    fn check_line(&mut self, parsed: Parsed, ends_with_newline: bool) -> Result<(), TraceError> {
        let line_number = self.line_number;
        let line = match parsed {
            Parsed::Blank => return Ok(()),
            Parsed::Line(line) => line,
            // Only the very last line can be cut off by a writer that stopped.
            Parsed::Invalid(_) if !ends_with_newline && self.trace.is_some() => {
                self.cut_off = Some(line_number);
                return Ok(());
            }
            Parsed::Invalid(error) => {
                return Err(TraceError::Malformed {
                    line: line_number,
                    message: error.to_string(),
                });
            }
        };
        let Some(current) = self.trace.as_mut() else {
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
            self.trace = Some(TraceFile {
                start,
                events: Vec::new(),
                end: None,
                truncation: None,
            });
            return Ok(());
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
        Ok(())
    }

    fn finish(self) -> Result<TraceFile, TraceError> {
        if let Some(line_number) = self.cut_off {
            return finish_truncated(
                self.trace,
                self.partial,
                Truncation {
                    complete_lines: line_number - 1,
                    dropped_partial_line: Some(line_number),
                },
            );
        }
        match self.trace {
            None => Err(TraceError::Empty),
            Some(trace) if trace.end.is_some() => Ok(trace),
            trace => finish_truncated(
                trace,
                self.partial,
                Truncation {
                    complete_lines: self.line_number,
                    dropped_partial_line: None,
                },
            ),
        }
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

    /// What reading `text` in chunks of `size` bytes gives, errors included, as text.
    fn read_chunked(text: &str, size: usize, partial: Partial) -> String {
        format!(
            "{:?}",
            read_in_chunks(text.as_bytes(), size, partial, |_| {})
        )
    }

    #[test]
    fn chunks_of_any_size_read_as_line_by_line() {
        let second = FAULT.replace("\"time_ns\":5", "\"time_ns\":6");
        let texts = [
            format!("{START}\n{FAULT}\r\n\n  \n{second}\n{END}\n"),
            format!("{START}\n{FAULT}\n{END}"),
            format!("{START}\n{FAULT}\n{{\"type\":\n{END}\n"),
            format!("{START}\n{FAULT}\n{}", &FAULT[..40]),
            format!("{START}\n{FAULT}\n"),
            format!("{START}\n{END}\n{FAULT}\n"),
            format!("\n{FAULT}\n{END}\n"),
        ];
        for text in &texts {
            for partial in [Partial::Refuse, Partial::Allow] {
                let whole = read_chunked(text, CHUNK_BYTES, partial);
                for size in 1..=text.len() {
                    assert_eq!(
                        read_chunked(text, size, partial),
                        whole,
                        "{size} bytes: {text}"
                    );
                }
            }
        }
    }

    /// Gives up: a disk that fails.
    struct Failing;

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the disk is gone"))
        }
    }

    #[test]
    fn a_read_error_comes_after_the_lines_read_before_it() {
        for size in [1, 7, 100, CHUNK_BYTES] {
            let read_then_fail = |text: &str| {
                read_in_chunks(text.as_bytes().chain(Failing), size, Partial::Allow, |_| {})
                    .unwrap_err()
                    .to_string()
            };
            let error = read_then_fail(&format!("{START}\n{FAULT}\n"));
            assert_eq!(error, "cannot read the trace: the disk is gone");
            let error = read_then_fail(&format!("{START}\n{{\"type\":\n{FAULT}\n{FAULT}"));
            assert!(error.starts_with("line 2 "), "{size} bytes: {error}");
        }
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
