//! What cowtrace's kernel side and user side agree on.
//!
//! Everything here is `no_std` and allocation-free so the very same code runs inside the
//! eBPF programs and in plain unit tests on the host: the per-fault state machine in
//! [`fault`] is exercised by the tests exactly as the kernel executes it.
//!
//! Records are `#[repr(C)]`, contain only integers and byte arrays, and are laid out with
//! no implicit padding (checked by tests), so their bytes are fully defined.
#![no_std]

pub mod config;
pub mod fault;
pub mod record;

pub use config::{Counter, ProbeConfig};
pub use fault::{FaultInFlight, FaultKind, classify};
pub use record::*;
