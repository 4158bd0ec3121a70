//! The syscalls recorded: the memory-map changes the mapping and page models follow, and the
//! forks whose cost they report. One program pair serves them all; which syscall fired and how
//! many arguments it has come from its number, looked up in a small map filled from the
//! tracefs format files.

use anyhow::Result;

use super::tracefs::{EventFormat, Tracefs};

/// A syscall cowtrace records, by name and number on this architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedSyscall {
    pub name: &'static str,
    pub nr: u32,
}

pub const RECORDED_SYSCALLS: [RecordedSyscall; 10] = [
    RecordedSyscall {
        name: "mmap",
        nr: libc::SYS_mmap as u32,
    },
    RecordedSyscall {
        name: "munmap",
        nr: libc::SYS_munmap as u32,
    },
    RecordedSyscall {
        name: "mremap",
        nr: libc::SYS_mremap as u32,
    },
    RecordedSyscall {
        name: "mprotect",
        nr: libc::SYS_mprotect as u32,
    },
    RecordedSyscall {
        name: "madvise",
        nr: libc::SYS_madvise as u32,
    },
    RecordedSyscall {
        name: "brk",
        nr: libc::SYS_brk as u32,
    },
    RecordedSyscall {
        name: "clone",
        nr: libc::SYS_clone as u32,
    },
    RecordedSyscall {
        name: "clone3",
        nr: libc::SYS_clone3 as u32,
    },
    RecordedSyscall {
        name: "fork",
        nr: libc::SYS_fork as u32,
    },
    RecordedSyscall {
        name: "vfork",
        nr: libc::SYS_vfork as u32,
    },
];

/// Name of a recorded syscall number.
pub fn syscall_name(nr: u32) -> Option<&'static str> {
    RECORDED_SYSCALLS
        .iter()
        .find(|syscall| syscall.nr == nr)
        .map(|syscall| syscall.name)
}

/// Where the syscall tracepoints keep their fields on this kernel, and which syscalls can be
/// recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallPlan {
    pub nr_offset: u32,
    pub first_arg_offset: u32,
    pub ret_offset: u32,
    /// Each recordable syscall with its argument count.
    pub syscalls: Vec<(RecordedSyscall, u32)>,
    /// Syscalls left out, with why.
    pub left_out: Vec<String>,
}

impl SyscallPlan {
    pub fn read(tracefs: &Tracefs) -> Result<SyscallPlan> {
        let mut plan = SyscallPlan::default();
        let mut layout: Option<(u32, u32, u32)> = None;
        for syscall in RECORDED_SYSCALLS {
            let (enter, exit) = (
                format!("sys_enter_{}", syscall.name),
                format!("sys_exit_{}", syscall.name),
            );
            if !tracefs.has_event("syscalls", &enter) || !tracefs.has_event("syscalls", &exit) {
                plan.left_out.push(format!("syscalls:{enter} (absent)"));
                continue;
            }
            let enter = tracefs.format("syscalls", &enter)?;
            let exit = tracefs.format("syscalls", &exit)?;
            match syscall_layout(&enter, &exit) {
                Ok((nr_offset, first_arg_offset, ret_offset, arg_count)) => {
                    let this = (nr_offset, first_arg_offset, ret_offset);
                    if layout.is_some_and(|layout| layout != this) {
                        plan.left_out.push(format!(
                            "{} (layout differs from the other syscalls)",
                            enter.event
                        ));
                        continue;
                    }
                    layout = Some(this);
                    plan.syscalls.push((syscall, arg_count));
                }
                Err(why) => plan.left_out.push(format!("{} ({why})", enter.event)),
            }
        }
        if let Some((nr_offset, first_arg_offset, ret_offset)) = layout {
            (plan.nr_offset, plan.first_arg_offset, plan.ret_offset) =
                (nr_offset, first_arg_offset, ret_offset);
        }
        Ok(plan)
    }
}

/// (`__syscall_nr` offset, first argument offset, `ret` offset, argument count) of one syscall,
/// if its arguments are consecutive 8-byte fields, as the programs read them.
fn syscall_layout(
    enter: &EventFormat,
    exit: &EventFormat,
) -> std::result::Result<(u32, u32, u32, u32), String> {
    let nr_offset = enter.offset("__syscall_nr", 4).map_err(|e| e.to_string())?;
    let ret_offset = exit.offset("ret", 8).map_err(|e| e.to_string())?;
    let args: Vec<_> = enter
        .fields
        .iter()
        .filter(|field| !field.name.starts_with("common_") && field.name != "__syscall_nr")
        .collect();
    let first_arg_offset = args.first().map_or(nr_offset + 8, |arg| arg.offset);
    for (index, arg) in args.iter().enumerate() {
        if arg.size != 8 || arg.offset != first_arg_offset + 8 * index as u32 {
            return Err(format!(
                "argument `{}` is not an 8-byte slot in sequence",
                arg.name
            ));
        }
    }
    if args.len() > 6 {
        return Err(format!("{} arguments", args.len()));
    }
    Ok((nr_offset, first_arg_offset, ret_offset, args.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::tracefs::parse_format;

    const ENTER_MMAP: &str = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:unsigned long addr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long len;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long prot;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long flags;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long fd;\toffset:48;\tsize:8;\tsigned:0;
\tfield:unsigned long off;\toffset:56;\tsize:8;\tsigned:0;";
    const EXIT: &str = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;";

    #[test]
    fn reads_argument_count_and_offsets() {
        let enter = parse_format("syscalls:sys_enter_mmap", ENTER_MMAP).unwrap();
        let exit = parse_format("syscalls:sys_exit_mmap", EXIT).unwrap();
        assert_eq!(syscall_layout(&enter, &exit), Ok((8, 16, 16, 6)));
        let fork = parse_format(
            "syscalls:sys_enter_fork",
            "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;",
        )
        .unwrap();
        assert_eq!(syscall_layout(&fork, &exit), Ok((8, 16, 16, 0)));
    }

    #[test]
    fn refuses_arguments_the_programs_would_misread() {
        let odd = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int small;\toffset:16;\tsize:4;\tsigned:1;";
        let enter = parse_format("syscalls:sys_enter_odd", odd).unwrap();
        let exit = parse_format("syscalls:sys_exit_odd", EXIT).unwrap();
        assert!(syscall_layout(&enter, &exit).unwrap_err().contains("small"));
    }

    #[test]
    fn names_numbers_of_this_architecture() {
        assert_eq!(syscall_name(libc::SYS_mmap as u32), Some("mmap"));
        assert_eq!(syscall_name(libc::SYS_clone3 as u32), Some("clone3"));
        assert_eq!(syscall_name(libc::SYS_read as u32), None);
    }
}
