//! Records: the raw bytes the kernel writes, decoded into typed values, and their JSON form.

pub mod json;

use std::mem::size_of;

use cowtrace_common::{ExecRecord, ExitRecord, FaultRecord, ForkRecord, RecordType, SyscallRecord};

/// One decoded ring buffer record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    Fault(FaultRecord),
    Fork(ForkRecord),
    Exec(ExecRecord),
    Exit(ExitRecord),
    Syscall(SyscallRecord),
}

impl Record {
    pub fn pid(&self) -> u32 {
        match self {
            Record::Fault(r) => r.header.pid,
            Record::Fork(r) => r.header.pid,
            Record::Exec(r) => r.header.pid,
            Record::Exit(r) => r.header.pid,
            Record::Syscall(r) => r.header.pid,
        }
    }

    pub fn time_ns(&self) -> u64 {
        match self {
            Record::Fault(r) => r.header.time_ns,
            Record::Fork(r) => r.header.time_ns,
            Record::Exec(r) => r.header.time_ns,
            Record::Exit(r) => r.header.time_ns,
            Record::Syscall(r) => r.header.time_ns,
        }
    }
}

/// A ring buffer record that cannot be decoded: a kernel/user version mismatch.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes has no type tag")]
    Short { len: usize },
    #[error("unknown record type {tag}")]
    UnknownType { tag: u32 },
    #[error("{record_type:?} record of {len} bytes, expected {expected}")]
    WrongSize {
        record_type: RecordType,
        len: usize,
        expected: usize,
    },
}

/// Decodes one record: the first four bytes are its type, the length must match that type.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let tag: [u8; 4] = bytes
        .get(0..4)
        .and_then(|tag| tag.try_into().ok())
        .ok_or(DecodeError::Short { len: bytes.len() })?;
    let tag = u32::from_ne_bytes(tag);
    let record_type = RecordType::from_u32(tag).ok_or(DecodeError::UnknownType { tag })?;
    Ok(match record_type {
        RecordType::Fault => Record::Fault(read(bytes, record_type)?),
        RecordType::Fork => Record::Fork(read(bytes, record_type)?),
        RecordType::Exec => Record::Exec(read(bytes, record_type)?),
        RecordType::Exit => Record::Exit(read(bytes, record_type)?),
        RecordType::Syscall => Record::Syscall(read(bytes, record_type)?),
    })
}

fn read<T: aya::Pod>(bytes: &[u8], record_type: RecordType) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::WrongSize {
            record_type,
            len: bytes.len(),
            expected: size_of::<T>(),
        });
    }
    // SAFETY: T is Pod (plain integers, every bit pattern valid) and the length was checked;
    // ring buffer data is only 8-byte aligned, so read unaligned.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// NUL-padded command name as text.
pub fn comm_to_string(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use cowtrace_common::{FaultKind, RecordHeader};

    use super::*;

    fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
        // SAFETY: Pod has no padding; reading its bytes is defined.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn decodes_each_record_type_by_its_tag() {
        let fault = FaultRecord {
            header: RecordHeader::fault(5, 1, 10, 11),
            address: 0x7000,
            kind: FaultKind::CowCopy as u32,
            new_pfn: 99,
            ..Default::default()
        };
        assert_eq!(decode(&bytes_of(&fault)), Ok(Record::Fault(fault)));
        let fork = ForkRecord {
            header: RecordHeader {
                record_type: RecordType::Fork as u32,
                pid: 10,
                ..Default::default()
            },
            child_pid: 12,
            child_tid: 12,
            comm: *b"demo\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        };
        assert_eq!(decode(&bytes_of(&fork)), Ok(Record::Fork(fork)));
        assert_eq!(comm_to_string(&fork.comm), "demo");
    }

    #[test]
    fn rejects_short_unknown_and_truncated_records() {
        assert_eq!(decode(&[1, 0]), Err(DecodeError::Short { len: 2 }));
        assert_eq!(
            decode(&[0xff, 0, 0, 0, 1, 2, 3, 4]),
            Err(DecodeError::UnknownType { tag: 0xff })
        );
        let fault = FaultRecord {
            header: RecordHeader::fault(1, 0, 1, 1),
            ..Default::default()
        };
        let bytes = bytes_of(&fault);
        assert!(matches!(
            decode(&bytes[..40]),
            Err(DecodeError::WrongSize { expected, .. }) if expected == size_of::<FaultRecord>()
        ));
    }
}
