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

/// What cargo's test harness reported, summed over its `test result:` lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestTally {
    pub passed: u64,
    pub failed: u64,
}

impl TestTally {
    /// Adds one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line; other lines are
    /// left alone.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                _ => {}
            }
        }
    }

    pub fn merge(self, other: TestTally) -> TestTally {
        TestTally {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
        }
    }
}

/// Runs a `cargo test` command, passing its output through while tallying its results.
pub fn run_tests(cmd: &mut Command) -> Result<(ExitStatus, TestTally)> {
    use std::io::{BufRead as _, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    let mut tally = TestTally::default();
    let stdout = child.stdout.take().context("test output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        println!("{line}");
        tally.add_line(&line);
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{}`", display(cmd)))?;
    Ok((status, tally))
}

#[cfg(test)]
mod tally_tests {
    use super::TestTally;

    #[test]
    fn sums_test_result_lines_only() {
        let mut tally = TestTally::default();
        tally.add_line("test result: ok. 21 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        tally.add_line("test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 33 filtered out; finished in 0.47s");
        tally.add_line("test foo ... ok");
        tally.add_line("running 3 tests");
        assert_eq!(
            tally,
            TestTally {
                passed: 24,
                failed: 1
            }
        );
    }
}
