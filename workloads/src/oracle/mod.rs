//! Ground truth from the kernel, independent of the tracer: which physical page backs each
//! virtual page ([`pagemap`]), and how many copy-on-write copies a task made ([`taskstats`]).

pub mod pagemap;
pub mod taskstats;
