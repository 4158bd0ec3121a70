//! `filemap:mm_filemap_map_pages`: fault-around scanned a range of file pages around the
//! faulting one and mapped the cached ones in the same fault. The range is counted, so a record
//! says how many pages one fault could have mapped, not just that it was a file fault.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{config::setting, inflight::fault_in_flight};

#[tracepoint]
pub fn fault_around(ctx: TracePointContext) -> u32 {
    // Also fires for get_user_pages faults (MAP_POPULATE), which have no state: ignored.
    let Some(fault) = fault_in_flight() else {
        return 0;
    };
    let index = unsafe { ctx.read_at::<u64>(setting(|c| &c.map_pages_index) as usize) };
    let last_index = unsafe { ctx.read_at::<u64>(setting(|c| &c.map_pages_last_index) as usize) };
    match (index, last_index) {
        (Ok(index), Ok(last_index)) => fault.on_fault_around(index, last_index),
        // Unreadable range: still a file fault.
        _ => fault.on_filemap(),
    }
    0
}
