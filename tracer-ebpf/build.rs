use which::which;

/// Building this crate has an undeclared dependency on the `bpf-linker` binary (the BPF target
/// links with it). Rebuild when it changes; `cargo xtask setup` installs it.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => println!(
            "cargo:warning=bpf-linker not found on PATH: run `cargo xtask build` (it installs it)"
        ),
    }
}
