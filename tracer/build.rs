//! Builds the eBPF programs (`tracer-ebpf`) for the BPF target and puts the object in OUT_DIR,
//! where `src/probes` embeds it with `include_bytes_aligned!`.

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf_package = metadata
        .packages
        .into_iter()
        .find(|package| package.name.as_str() == "cowtrace-ebpf")
        .ok_or_else(|| anyhow!("cowtrace-ebpf package not found"))?;
    let root_dir = ebpf_package
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf_package.manifest_path))?;
    // `cargo xtask` picks the toolchain: nightly where present, else stable with
    // RUSTC_BOOTSTRAP=1 (see xtask/src/setup.rs).
    println!("cargo:rerun-if-env-changed=COWTRACE_EBPF_TOOLCHAIN");
    let toolchain_name = std::env::var("COWTRACE_EBPF_TOOLCHAIN").ok();
    let toolchain = match toolchain_name.as_deref() {
        None | Some("nightly") => Toolchain::Nightly,
        Some(name) => Toolchain::Custom(name),
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf_package.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        toolchain,
    )
}
