//! The machine a report ran on: CPU, cores, memory, OS, MPI, libtorch, commit and date, as the
//! report's reader needs them to judge the numbers.

use std::process::Command;

use serde_json::{Value, json};

/// What the report says about the machine and the software.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Total memory in bytes (`/proc/meminfo`).
    pub memory_bytes: u64,
    /// Operating system (`/etc/os-release`) and kernel.
    pub os: String,
    /// `mpirun --version`'s first line.
    pub mpi: String,
    /// libtorch's version (tch).
    pub torch: String,
    /// The heatsql commit (`git describe`).
    pub commit: String,
    /// When the report ran (UTC).
    pub date: String,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once([':', '=']))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

impl Machine {
    /// Reads the machine description.
    pub fn describe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = field(&read("/proc/cpuinfo"), "model name").unwrap_or_else(|| "unknown".into());
        let memory_bytes = field(&read("/proc/meminfo"), "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let os = format!(
            "{}, Linux {}",
            field(&read("/etc/os-release"), "PRETTY_NAME").unwrap_or_else(|| "unknown".into()),
            read("/proc/sys/kernel/osrelease").trim()
        );
        let root = super::options::repo_root();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_bytes,
            os,
            mpi: first_line("mpirun", &["--version"]),
            torch: torch_version(),
            commit: first_line(
                "git",
                &["-C", &root.display().to_string(), "describe", "--always", "--dirty"],
            ),
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }

    /// The JSON form kept in results.json.
    pub fn to_json(&self) -> Value {
        json!({
            "cpu": self.cpu,
            "cores": self.cores,
            "memory_bytes": self.memory_bytes,
            "os": self.os,
            "mpi": self.mpi,
            "torch": self.torch,
            "commit": self.commit,
            "date": self.date,
        })
    }
}

/// libtorch's version from the venv's torch package (`.torch/version.py`), else "unknown".
fn torch_version() -> String {
    let path = super::options::repo_root().join(".torch/version.py");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| field(&t, "__version__"))
        .map(|v| v.trim_matches('\'').to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_key_value_files() {
        assert_eq!(
            field("model name\t: AMD EPYC\n", "model name").as_deref(),
            Some("AMD EPYC")
        );
        assert_eq!(
            field("PRETTY_NAME=\"Debian 12\"\n", "PRETTY_NAME").as_deref(),
            Some("Debian 12")
        );
        assert_eq!(field("MemTotal:  100 kB\n", "Swap"), None);
    }
}
