//! Hook for per-mapping charts: major and minor faults and bytes read per file mapping, for
//! mmap workloads.
//!
//! Nothing is drawn here yet, on purpose: these charts belong to the mmap work, which adds the
//! attribution of faults to mappings (fault lines naming their mapping and file offset). Build
//! the per-mapping data from that here and return the charts (named `mapping-*`) from
//! [`mapping_charts`]; the report already places them in its "Faults per mapping" section and
//! drops the note below once there are any.

use super::{charts::Chart, data::ReportData};

/// Per-mapping major/minor fault charts. Empty until the mmap work fills it in.
pub fn mapping_charts(_data: &ReportData) -> Vec<Chart> {
    Vec::new()
}

/// What the report says in place of the charts while there are none.
pub const NOT_AVAILABLE: &str = "Not in this report: this version of cowtrace draws no \
     per-mapping major/minor fault or bytes-read chart yet. The address-space chart above shows \
     where faults happened.";
