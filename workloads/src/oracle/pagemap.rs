//! `/proc/PID/pagemap`: one 64-bit entry per virtual page, at byte offset `vpn * 8`.
//!
//! Two processes share a physical page exactly when their entries for the same virtual
//! page are present with equal PFNs. PFNs read as 0 without `CAP_SYS_ADMIN`.
//! See the kernel's `Documentation/admin-guide/mm/pagemap.rst`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bit 63: the page is present in RAM.
const PRESENT_BIT: u64 = 1 << 63;
/// Bit 62: the page is swapped out; bits 0-54 then hold swap type and offset, not a PFN.
const SWAPPED_BIT: u64 = 1 << 62;
/// Bit 61: the page is a file page or shared anonymous memory (not a private anonymous page).
const FILE_OR_SHARED_BIT: u64 = 1 << 61;
/// Bit 56: the page is mapped by exactly one process (its map count is 1).
const EXCLUSIVE_BIT: u64 = 1 << 56;
/// Bits 0-54: the page frame number, when present.
const PFN_MASK: u64 = (1 << 55) - 1;
/// Size of one pagemap entry.
const ENTRY_BYTES: usize = 8;

/// One decoded pagemap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageEntry {
    /// The page is in RAM (not swapped, not unpopulated).
    pub present: bool,
    /// Physical page frame number; 0 when not present or hidden (not root).
    pub pfn: u64,
    /// Mapped by this process only.
    pub exclusive: bool,
    /// A page cache page or shared anonymous memory, rather than a private anonymous page.
    pub file_or_shared: bool,
}

impl PageEntry {
    /// Decodes one raw 64-bit pagemap word.
    pub fn decode(word: u64) -> Self {
        let present = word & PRESENT_BIT != 0;
        // A swapped entry (present clear) reuses the PFN bits for a swap location.
        let pfn = if present && word & SWAPPED_BIT == 0 {
            word & PFN_MASK
        } else {
            0
        };
        PageEntry {
            present,
            pfn,
            exclusive: word & EXCLUSIVE_BIT != 0,
            file_or_shared: word & FILE_OR_SHARED_BIT != 0,
        }
    }
}

/// Reads the entries of `pages` consecutive virtual pages of process `pid`, starting at the
/// page containing `start_addr`, with one `pread` of the whole range.
pub fn read_range(pid: u32, start_addr: u64, pages: usize) -> io::Result<Vec<PageEntry>> {
    let page_size = crate::sys::page_size() as u64;
    let path = format!("/proc/{pid}/pagemap");
    let file = File::open(&path)?;
    let mut raw = vec![0u8; pages * ENTRY_BYTES];
    let offset = start_addr / page_size * ENTRY_BYTES as u64;
    file.read_exact_at(&mut raw, offset)
        .map_err(|err| io::Error::new(err.kind(), format!("reading {path}: {err}")))?;
    Ok(decode_entries(&raw))
}

/// Decodes a buffer of native-endian pagemap words.
fn decode_entries(raw: &[u8]) -> Vec<PageEntry> {
    raw.chunks_exact(ENTRY_BYTES)
        .map(|word| PageEntry::decode(u64::from_ne_bytes(word.try_into().unwrap())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_present_exclusive_page() {
        let word = PRESENT_BIT | EXCLUSIVE_BIT | 0x1234_5678;
        assert_eq!(
            PageEntry::decode(word),
            PageEntry {
                present: true,
                pfn: 0x1234_5678,
                exclusive: true,
                file_or_shared: false,
            }
        );
    }

    #[test]
    fn decodes_present_shared_page_with_widest_pfn() {
        // Soft-dirty (55) and file/shared (61) bits must not leak into the PFN.
        let word = PRESENT_BIT | (1 << 61) | (1 << 55) | PFN_MASK;
        let entry = PageEntry::decode(word);
        assert!(entry.present);
        assert!(!entry.exclusive);
        assert!(entry.file_or_shared);
        assert_eq!(entry.pfn, (1 << 55) - 1);
    }

    #[test]
    fn absent_page_has_no_pfn() {
        assert_eq!(PageEntry::decode(0), PageEntry::default());
    }

    #[test]
    fn swapped_page_is_not_present_and_has_no_pfn() {
        let word = SWAPPED_BIT | 0xabcdef;
        let entry = PageEntry::decode(word);
        assert!(!entry.present);
        assert_eq!(entry.pfn, 0);
    }

    #[test]
    fn decodes_a_buffer_of_words_in_order() {
        let words = [PRESENT_BIT | 7, 0, PRESENT_BIT | EXCLUSIVE_BIT | 9];
        let raw: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let entries = decode_entries(&raw);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].pfn, 7);
        assert!(!entries[1].present);
        assert!(entries[2].exclusive);
    }

    #[test]
    fn reads_own_touched_and_untouched_pages() {
        let page_size = crate::sys::page_size();
        let region = crate::sys::AnonRegion::map(4, page_size).unwrap();
        region.write_pages(0..2, 1);
        let entries = read_range(crate::sys::getpid(), region.start_addr(), 4).unwrap();
        assert_eq!(entries.len(), 4);
        assert!(entries[0].present && entries[1].present);
        assert!(entries[0].exclusive);
        assert!(!entries[2].present && !entries[3].present);
    }
}
