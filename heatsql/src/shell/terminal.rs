//! Is the user's terminal at the other end of this rank's input or error output?
//!
//! Alone, that is `isatty`. Under OpenMPI's `mpirun`, rank 0's standard input and error are
//! pipes from `mpirun` (and its standard output is always a pseudo-terminal, even when the
//! output is redirected to a file), so `isatty` cannot tell. There the answer is whether
//! `mpirun`'s own descriptor is a terminal: rank 0 is started by `mpirun` on the node where it
//! runs, and `/proc/<pid>/fd/<n>` of that process names its terminal. Remote ranks, `srun`
//! without `--pty`, and systems without `/proc` answer no, which keeps batch output clean.

use std::io::IsTerminal;

/// Launcher processes whose descriptors are the user's (OpenMPI, MPICH/Hydra, PRRTE).
const LAUNCHERS: [&str; 7] = [
    "mpirun",
    "mpiexec",
    "orterun",
    "prterun",
    "prte",
    "mpiexec.hydra",
    "hydra_pmi_proxy",
];

/// Standard input is the user's terminal (the user types the statements).
pub fn input_is_terminal() -> bool {
    std::io::stdin().is_terminal() || launcher_fd_is_terminal(0)
}

/// Standard error reaches the user's terminal (progress may be drawn there).
pub fn error_is_terminal() -> bool {
    std::io::stderr().is_terminal() || launcher_fd_is_terminal(2)
}

/// Whether descriptor `fd` of a launcher among this process's ancestors (at most four levels
/// up: under MPICH the parent is `hydra_pmi_proxy`, whose descriptors are pipes, and the user's
/// terminal is `mpiexec`'s) is a terminal.
fn launcher_fd_is_terminal(fd: u8) -> bool {
    let launched = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !launched {
        return false;
    }
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..4 {
        if pid <= 1 {
            return false;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if LAUNCHERS.contains(&comm.trim()) {
            let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap_or_default();
            let target = target.to_string_lossy();
            if target.starts_with("/dev/pts/") || target.starts_with("/dev/tty") {
                return true;
            }
        }
        pid = parent_of(pid).unwrap_or(0);
    }
    false
}

/// The parent of `pid` (field 4 of `/proc/<pid>/stat`, after the parenthesised name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_parent_of_this_process_is_found() {
        let me = std::process::id();
        assert_eq!(super::parent_of(me), Some(std::os::unix::process::parent_id()));
    }
}
