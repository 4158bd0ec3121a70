//! cowtrace: which pages a parent and child still share after fork(), which were copied and
//! when, which write reused a page instead of copying it, and how file mappings fault in.
//!
//! Architecture, one folder each: `probes` (load and attach the eBPF programs) → `records`
//! (decode the ring buffer, JSON lines) → `model` (per-process state, plain Rust) → `ui` and
//! `verify` (the trace against ground truth); `commands` ties them together.

pub mod attach;
pub mod cli;
pub mod commands;
pub mod model;
pub mod probes;
pub mod records;
pub mod report;
pub mod ui;
pub mod verify;
