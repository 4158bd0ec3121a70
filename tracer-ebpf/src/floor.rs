//! A program that does nothing, for `cargo xtask bench`: attached to the raw tracepoints of
//! the per-fault path, it measures what the kernel charges for calling a program there at all,
//! the floor under cowtrace's own per-fault work.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

#[raw_tracepoint]
pub fn floor(_ctx: RawTracePointContext) -> i32 {
    0
}
