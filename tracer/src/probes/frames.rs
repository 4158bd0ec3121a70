//! Frame numbers from raw `mm_page_alloc`: its argument is a `struct page *`, and a page's
//! frame number is its index in the kernel's page array (`vmemmap`), whose base is randomised
//! at boot (`CONFIG_RANDOMIZE_MEMORY`) and not in /proc/kallsyms. The base is found here, once,
//! before anything is traced: this thread writes fresh pages, the kernel side stores each
//! page's `struct page *`, and /proc/self/pagemap gives the same page's frame number.

use std::{ptr, thread, time::Duration};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use cowtrace_common::config::{frame_base, frame_base_from};
use cowtrace_workloads::oracle::pagemap;

/// Calibrations that must agree; a page allocated by an interrupt on this thread's CPU in
/// between could otherwise give a wrong base.
const AGREEING: usize = 2;
const ATTEMPTS: usize = 8;

/// Finds the page array's base and hands it to the kernel side. Runs on the thread whose id is
/// the configuration's `calibration_tid`, with `page_alloc` attached and nothing traced yet.
pub fn calibrate(ebpf: &mut Ebpf, struct_page_size: u32, page_size: usize) -> Result<u64> {
    let mut slots: Array<&mut MapData, u64> =
        Array::try_from(ebpf.map_mut("FRAME_BASE").context("FRAME_BASE map")?)?;
    let mut found: Vec<u64> = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..ATTEMPTS {
        let (page_address, pfn) = one_page(&mut slots, page_size)?;
        seen.push(format!("struct page {page_address:#x} = frame {pfn:#x}"));
        if let Some(base) = frame_base_from(page_address, pfn, struct_page_size)
            && page_address != 0
            && pfn != 0
        {
            found.push(base);
            if found.iter().filter(|&&other| other == base).count() >= AGREEING {
                slots.set(frame_base::BASE, base, 0)?;
                log::debug!("page array base {base:#x} ({})", seen.join(", "));
                return Ok(base);
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    bail!(
        "cannot find the kernel's page array (to turn `struct page *` into frame numbers): \
         {ATTEMPTS} calibration pages gave no {AGREEING} agreeing answers ({})",
        seen.join(", ")
    )
}

/// Writes one fresh anonymous page and returns its `struct page *` (as the kernel side saw it
/// allocated) and its frame number (from pagemap).
fn one_page(slots: &mut Array<&mut MapData, u64>, page_size: usize) -> Result<(u64, u64)> {
    slots.set(frame_base::CALIBRATION_PAGE, 0, 0)?;
    // SAFETY: a private anonymous mapping of one page, written once and unmapped below; no
    // Rust reference to it exists.
    let address = unsafe {
        libc::mmap(
            ptr::null_mut(),
            page_size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        bail!(
            "mapping a calibration page: {}",
            std::io::Error::last_os_error()
        );
    }
    // The write fault allocates the page (movable, order 0) on this thread.
    unsafe { ptr::write_volatile(address.cast::<u8>(), 1) };
    let page_address = slots.get(&frame_base::CALIBRATION_PAGE, 0);
    let entry = pagemap::read_range(std::process::id(), address as u64, 1);
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(address, page_size) };
    let page_address = page_address?;
    let entry = entry.context("reading /proc/self/pagemap")?;
    let pfn = entry
        .first()
        .filter(|entry| entry.present)
        .map_or(0, |entry| entry.pfn);
    Ok((page_address, pfn))
}
