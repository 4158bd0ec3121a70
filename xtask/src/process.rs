//! Running other programs: as the invoking user or as root, with errors that say what failed.

use std::{
    env,
    ffi::{OsStr, OsString},
    path::Path,
    process::{Command, ExitStatus},
};

use anyhow::{Context as _, Result, anyhow, bail};

/// Whether xtask itself runs as root (CI does; developers usually do not).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs `program` as root with `vars` set: directly when we are root, otherwise
/// as `sudo -E env K=V... /abs/program`. `-E` keeps the caller's environment where the sudo
/// policy allows it; `vars` are passed through `env` because sudo resets some variables (PATH
/// to its `secure_path`, often HOME) whatever `-E` says.
pub fn as_root(program: impl AsRef<OsStr>, vars: &[(OsString, OsString)]) -> Result<Command> {
    let program = program.as_ref();
    if is_root() {
        let mut cmd = Command::new(program);
        cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        return Ok(cmd);
    }
    let sudo = which::which("sudo").map_err(|_| {
        anyhow!(
            "this step needs root and `sudo` is not installed; run as root instead: `{}`",
            invocation()
        )
    })?;
    // Resolve the program with the invoking user's PATH: sudo would search its own secure_path.
    let program = if Path::new(program).components().count() > 1 {
        program.to_owned()
    } else {
        which::which(program)
            .with_context(|| format!("`{}` not found on PATH", program.display()))?
            .into_os_string()
    };
    let mut cmd = Command::new(sudo);
    cmd.args(["-E", "env"]);
    for (key, value) in vars {
        let mut assignment = key.clone();
        assignment.push("=");
        assignment.push(value);
        cmd.arg(assignment);
    }
    cmd.arg(program);
    Ok(cmd)
}

/// How xtask was invoked, for messages that tell the user what to run instead.
fn invocation() -> String {
    let args: Vec<String> = env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
        .trim_end()
        .to_owned()
}

/// Runs `cmd` with inherited stdio; an error unless it exits successfully.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` with inherited stdio and returns its exit status; an error only if it cannot start.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    cmd.status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))
}

/// Runs `cmd` and returns its standard output; an error (with its stderr) unless it succeeds.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let output = cmd
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout)
        .with_context(|| format!("`{}` printed non-UTF-8 output", display(cmd)))
}

/// Whether `cmd` starts and exits successfully; its output is discarded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|output| output.status.success())
}

/// Runs `cmd` like [`status`], but xtask survives Ctrl-C meanwhile. The terminal sends SIGINT
/// to the whole foreground process group, so the child gets it too and decides how to finish
/// (the tracer prints its summary); we wait for it and report its real exit status instead of
/// dying first. A no-op handler, not `SIG_IGN`: handlers reset to the default on exec, while an
/// ignored SIGINT would be inherited by the child.
pub fn status_through_interrupts(cmd: &mut Command) -> Result<ExitStatus> {
    extern "C" fn on_interrupt(_: libc::c_int) {}
    let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler does nothing, so it is async-signal-safe; the previous disposition is
    // restored below.
    let previous = unsafe { libc::signal(libc::SIGINT, handler) };
    let result = status(cmd);
    if previous != libc::SIG_ERR {
        // SAFETY: as above; `previous` came from signal().
        unsafe { libc::signal(libc::SIGINT, previous) };
    }
    result
}

/// The exit code a shell would report for `status` (128 + signal number when killed).
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

/// `program arg...` for messages; the environment is left out to keep them readable.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
