//! `cargo xtask setup`: installs what building and testing cowtrace needs on a fresh Debian 12
//! machine. Every step checks before it acts, so a second run does no work and takes a moment;
//! each step prints one line `setup: <what> ... <outcome>`.

use std::{
    env, fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::process;

/// The variable that tells `tracer/build.rs` (and through it aya-build) which toolchain compiles
/// the eBPF crate. Set by hand, it also overrides the choice made here.
pub const TOOLCHAIN_VAR: &str = "COWTRACE_EBPF_TOOLCHAIN";

/// The bpf-linker release verified to build against the toolchains' libLLVM (feature
/// `llvm-22`). Installed `--locked`, with its own lock file, so that a new release of it or of
/// a dependency (which may want a newer Rust) cannot break setup.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the tests and scripts use (chromium: the report tests open the HTML report
/// in headless Chromium; linux-perf: the mmap tests compare fault totals with `perf stat`, and
/// `cargo xtask bench` measures cowtrace against perf and bpftrace).
const DEBIAN_PACKAGES: &[&str] = &["bpftool", "jq", "chromium", "linux-perf", "bpftrace"];

/// The toolchain that compiles the eBPF crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// A rustup toolchain name: `nightly`, or `stable` when the machine has no nightly.
    pub name: String,
    /// Stable accepts the unstable flags the BPF build needs (`-Z build-std`) only with
    /// `RUSTC_BOOTSTRAP=1`.
    pub needs_bootstrap: bool,
    /// Why this one, for the setup log.
    reason: &'static str,
}

/// What the other tasks need once setup has run.
pub struct Tools {
    pub toolchain: Toolchain,
    /// Holds `bpf-linker`; goes in front of PATH for every build.
    pub bin_dir: PathBuf,
}

/// The eBPF toolchain: nightly when rustup has it, else stable with `RUSTC_BOOTSTRAP=1` (no
/// toolchain can be downloaded here). Decided once per run, so every step and every cargo
/// invocation agree.
pub fn ebpf_toolchain() -> Result<&'static Toolchain> {
    static CHOICE: OnceLock<Toolchain> = OnceLock::new();
    if let Some(toolchain) = CHOICE.get() {
        return Ok(toolchain);
    }
    let toolchain = detect_toolchain()?;
    Ok(CHOICE.get_or_init(|| toolchain))
}

fn detect_toolchain() -> Result<Toolchain> {
    let (name, reason) = match env::var(TOOLCHAIN_VAR) {
        Ok(name) if !name.is_empty() => (name, "set by $COWTRACE_EBPF_TOOLCHAIN"),
        _ => {
            // Asking rustup to run `+nightly` could start a download; listing cannot.
            let list = process::stdout(Command::new("rustup").args(["toolchain", "list"]))
                .context("cannot list rustup toolchains (is rustup installed?)")?;
            let has_nightly = list
                .lines()
                .filter_map(|line| line.split_whitespace().next())
                .any(is_undated_nightly);
            if has_nightly {
                ("nightly".to_owned(), "installed")
            } else {
                ("stable".to_owned(), "no nightly installed")
            }
        }
    };
    Ok(Toolchain {
        needs_bootstrap: !name.starts_with("nightly"),
        name,
        reason,
    })
}

/// `nightly` or `nightly-<host triple>` (what `+nightly` selects), not `nightly-2026-05-01-...`.
fn is_undated_nightly(toolchain: &str) -> bool {
    match toolchain.strip_prefix("nightly") {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('-')
            .is_some_and(|triple| !triple.starts_with(|c: char| c.is_ascii_digit())),
        None => false,
    }
}

/// `$CARGO_HOME`, by default `$HOME/.cargo`.
pub fn cargo_home() -> Result<PathBuf> {
    home_var("CARGO_HOME", ".cargo")
}

/// `$RUSTUP_HOME`, by default `$HOME/.rustup`.
pub fn rustup_home() -> Result<PathBuf> {
    home_var("RUSTUP_HOME", ".rustup")
}

fn home_var(var: &str, default_under_home: &str) -> Result<PathBuf> {
    let path = match env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            PathBuf::from(env::var_os("HOME").context("HOME is not set")?).join(default_under_home)
        }
    };
    // Absolute, so it stays right for commands started in another directory or through sudo.
    std::path::absolute(&path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// Where setup puts the tools it builds: `$CARGO_HOME/cowtrace-tools`.
fn tools_dir() -> Result<PathBuf> {
    Ok(cargo_home()?.join("cowtrace-tools"))
}

/// Runs every setup step.
pub fn run() -> Result<Tools> {
    let toolchain = ebpf_toolchain()?.clone();
    let bootstrap = if toolchain.needs_bootstrap {
        ", with RUSTC_BOOTSTRAP=1"
    } else {
        ""
    };
    report(
        "eBPF toolchain",
        &format!("{} ({}{bootstrap})", toolchain.name, toolchain.reason),
    );
    rust_src(&toolchain)?;
    let bin_dir = bpf_linker(&toolchain)?;
    debian_packages()?;
    Ok(Tools { toolchain, bin_dir })
}

fn report(step: &str, outcome: &str) {
    println!("setup: {step} ... {outcome}");
}

/// Step 1: the BPF target has no prebuilt std, so the eBPF build compiles `core` from source.
fn rust_src(toolchain: &Toolchain) -> Result<()> {
    let step = format!("rust-src ({})", toolchain.name);
    let installed = process::stdout(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &toolchain.name,
    ]))
    .with_context(|| format!("cannot list the components of toolchain {}", toolchain.name))?;
    if installed.lines().any(|line| line.trim() == "rust-src") {
        report(&step, "already installed");
        return Ok(());
    }
    report(&step, "installing");
    process::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        &toolchain.name,
    ]))
    .context("cannot install rust-src")?;
    report(&step, "installed");
    Ok(())
}

/// The toolchain's own LLVM shared library, e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`.
struct Llvm {
    library: PathBuf,
    file_name: String,
    /// `22.1`, from the file name.
    version: String,
}

impl Llvm {
    fn major(&self) -> &str {
        self.version.split('.').next().unwrap_or(&self.version)
    }

    fn of(toolchain: &Toolchain) -> Result<Self> {
        let sysroot = process::stdout(Command::new("rustup").args([
            "run",
            &toolchain.name,
            "rustc",
            "--print",
            "sysroot",
        ]))?;
        let lib_dir = Path::new(sysroot.trim()).join("lib");
        let mut found = Vec::new();
        for entry in
            fs::read_dir(&lib_dir).with_context(|| format!("cannot read {}", lib_dir.display()))?
        {
            let file_name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(version) = llvm_version(&file_name).map(str::to_owned) {
                found.push(Llvm {
                    library: lib_dir.join(&file_name),
                    file_name,
                    version,
                });
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => bail!("no libLLVM.so.<version>-rust-* in {}", lib_dir.display()),
            _ => bail!(
                "more than one libLLVM.so.<version>-rust-* in {}",
                lib_dir.display()
            ),
        }
    }
}

/// `22.1` from `libLLVM.so.22.1-rust-1.97.0-nightly`; `None` for other files, including the
/// `libLLVM-22-rust-*.so` link next to it.
fn llvm_version(file_name: &str) -> Option<&str> {
    let (version, _) = file_name
        .strip_prefix("libLLVM.so.")?
        .split_once("-rust-")?;
    Some(version)
}

/// Step 2: bpf-linker links the eBPF crate. Debian 12 has no LLVM 22 development package, so it
/// is built against the eBPF toolchain's own libLLVM, through a prefix that looks like an LLVM
/// install to its build script:
///
/// - `lib/libLLVM.so` -> the toolchain's library, for linking;
/// - `lib/<the library's file name>` -> the same, because the binary NEEDs that exact name and
///   gets `lib/` as its RUNPATH;
/// - `bin/llvm-config`, a stub answering only the two questions the build asks.
///
/// Returns the directory holding `bpf-linker`.
fn bpf_linker(toolchain: &Toolchain) -> Result<PathBuf> {
    let llvm = Llvm::of(toolchain)?;
    let tools = tools_dir()?;
    let prefix = tools.join("llvm-prefix");
    let bin_dir = tools.join("bin");
    let linker = bin_dir.join("bpf-linker");
    let step = format!("bpf-linker (LLVM {} of {})", llvm.version, toolchain.name);

    // The binary stops starting once the library it was linked against is gone (a toolchain
    // update changes the file name). Also require the current library in the prefix, so
    // switching nightly <-> stable rebuilds even while the old library still exists.
    let current = prefix.join("lib").join(&llvm.file_name).exists();
    if current && process::succeeds(Command::new(&linker).arg("--version")) {
        report(&step, "already installed");
        return Ok(bin_dir);
    }

    report(&step, "building (about a minute)");
    let started = Instant::now();
    make_llvm_prefix(&prefix, &llvm)?;
    process::run(
        Command::new("rustup")
            .args(["run", &toolchain.name, "cargo", "install", "bpf-linker"])
            .args(["--version", BPF_LINKER_VERSION, "--locked"])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{}", llvm.major()),
            ])
            // --force: an earlier build of the same version may be recorded there, built
            // against a library that no longer exists.
            .arg("--force")
            .arg("--root")
            .arg(&tools)
            .env("LLVM_PREFIX", &prefix),
    )
    .context("cannot build bpf-linker")?;
    if !process::succeeds(Command::new(&linker).arg("--version")) {
        bail!("{} was built but does not start", linker.display());
    }
    report(
        &step,
        &format!("installed in {} s", started.elapsed().as_secs()),
    );
    Ok(bin_dir)
}

fn make_llvm_prefix(prefix: &Path, llvm: &Llvm) -> Result<()> {
    // From scratch: links to libraries of an earlier toolchain must not linger.
    if prefix.exists() {
        fs::remove_dir_all(prefix)
            .with_context(|| format!("cannot remove {}", prefix.display()))?;
    }
    let lib = prefix.join("lib");
    let bin = prefix.join("bin");
    for dir in [&lib, &bin] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for name in ["libLLVM.so", llvm.file_name.as_str()] {
        let link = lib.join(name);
        symlink(&llvm.library, &link)
            .with_context(|| format!("cannot create symlink {}", link.display()))?;
    }
    let llvm_config = bin.join("llvm-config");
    let script = LLVM_CONFIG_STUB
        .replace("@VERSION@", &format!("{}.0", llvm.version))
        .replace("@LIBDIR@", &shell_quote(&lib.to_string_lossy()));
    fs::write(&llvm_config, script)
        .with_context(|| format!("cannot write {}", llvm_config.display()))?;
    fs::set_permissions(&llvm_config, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", llvm_config.display()))?;
    Ok(())
}

/// `bin/llvm-config` of the LLVM prefix: bpf-linker's build script asks only for the version
/// (to check it matches the `llvm-<major>` feature) and the library directory.
const LLVM_CONFIG_STUB: &str = r#"#!/bin/sh
# Written by `cargo xtask setup`: just enough llvm-config to build bpf-linker against the Rust
# toolchain's own libLLVM.
case "$1" in
  --version) echo @VERSION@ ;;
  --libdir) echo @LIBDIR@ ;;
  *) echo "llvm-config stub: unsupported: $*" >&2; exit 1 ;;
esac
"#;

/// `text` as one single-quoted sh word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Step 3: Debian packages, through apt as root (sudo when we are not root).
fn debian_packages() -> Result<()> {
    let step = format!("debian packages ({})", DEBIAN_PACKAGES.join(", "));
    let mut missing = Vec::new();
    for &package in DEBIAN_PACKAGES {
        if !dpkg_installed(package)? {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        report(&step, "already installed");
        return Ok(());
    }
    report(&step, &format!("installing {}", missing.join(" ")));
    let vars = [("DEBIAN_FRONTEND".into(), "noninteractive".into())];
    // Update first: a fresh machine (or container) may have no package lists at all.
    process::run(process::as_root("apt-get", &vars)?.arg("update")).context(
        "`apt-get update` failed: check network access to the Debian mirrors and that no other apt is running",
    )?;
    process::run(
        process::as_root("apt-get", &vars)?
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
    .with_context(|| format!("cannot install the Debian packages {}", missing.join(" ")))?;
    for &package in &missing {
        if !dpkg_installed(package)? {
            bail!("apt-get reported success but {package} is still not installed");
        }
    }
    report(&step, "installed");
    Ok(())
}

fn dpkg_installed(package: &str) -> Result<bool> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .context(
            "cannot run dpkg-query: setup supports Debian only; install bpftool, jq, chromium, linux-perf and bpftrace by hand",
        )?;
    // dpkg-query fails for a package it has never heard of: that is "not installed" too.
    Ok(output.status.success() && output.stdout == b"install ok installed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_means_the_undated_one() {
        assert!(is_undated_nightly("nightly"));
        assert!(is_undated_nightly("nightly-x86_64-unknown-linux-gnu"));
        assert!(!is_undated_nightly(
            "nightly-2026-05-15-x86_64-unknown-linux-gnu"
        ));
        assert!(!is_undated_nightly("stable-x86_64-unknown-linux-gnu"));
        assert!(!is_undated_nightly("nightlyish"));
    }

    #[test]
    fn llvm_version_comes_from_the_versioned_library_name() {
        assert_eq!(
            llvm_version("libLLVM.so.22.1-rust-1.97.0-nightly"),
            Some("22.1")
        );
        assert_eq!(
            llvm_version("libLLVM.so.22.1-rust-1.95.0-stable"),
            Some("22.1")
        );
        assert_eq!(llvm_version("libLLVM-22-rust-1.97.0-nightly.so"), None);
        assert_eq!(llvm_version("librustc_driver-b5a965480ee51f9a.so"), None);
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("/a b/lib"), "'/a b/lib'");
        assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
    }
}
