//! Invoking cargo on the workspace with what the eBPF build needs: `bpf-linker` on PATH and the
//! eBPF toolchain announced to `tracer/build.rs`.

use std::{
    env,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::{
    process,
    setup::{self, Tools},
};

pub struct Cargo {
    program: PathBuf,
    root: PathBuf,
    vars: Vec<(OsString, OsString)>,
}

impl Cargo {
    pub fn new(root: &Path, tools: &Tools) -> Result<Self> {
        // `cargo xtask` runs us through cargo, which sets CARGO to its own binary: the nested
        // builds then use the same toolchain as the one the user picked for the workspace.
        let program = match env::var_os("CARGO") {
            Some(cargo) => PathBuf::from(cargo),
            None => which::which("cargo").context("cargo not found on PATH")?,
        };
        let path = env::join_paths(
            std::iter::once(tools.bin_dir.clone())
                .chain(env::var_os("PATH").iter().flat_map(env::split_paths)),
        )
        .context("PATH cannot hold the tools directory")?;
        let mut vars: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), path),
            // Spelled out so that sudo, which may reset HOME, keeps the invoking user's
            // toolchains and registry.
            ("CARGO_HOME".into(), setup::cargo_home()?.into()),
            ("RUSTUP_HOME".into(), setup::rustup_home()?.into()),
            (
                setup::TOOLCHAIN_VAR.into(),
                tools.toolchain.name.clone().into(),
            ),
        ];
        if tools.toolchain.needs_bootstrap {
            vars.push(("RUSTC_BOOTSTRAP".into(), "1".into()));
        }
        Ok(Self {
            program,
            root: root.to_owned(),
            vars,
        })
    }

    /// `cargo <args>` in the workspace root, as the invoking user.
    pub fn command<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .current_dir(&self.root)
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `cargo <args>` in the workspace root, as root (through sudo unless we are root).
    pub fn root_command<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(
        &self,
        args: I,
    ) -> Result<Command> {
        let mut cmd = process::as_root(&self.program, &self.vars)?;
        cmd.args(args).current_dir(&self.root);
        Ok(cmd)
    }

    /// Where cargo puts build output. Honors `CARGO_TARGET_DIR`; a `build.target-dir` in a config
    /// file would be missed, and the workspace sets none.
    pub fn target_dir(&self) -> PathBuf {
        match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => self.root.join(dir),
            _ => self.root.join("target"),
        }
    }
}
