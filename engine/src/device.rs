//! The compute device setting and libtorch's thread count.
//!
//! Device is a setting, not a code path: every operation runs the same tch calls on
//! `cpu` or `cuda:<local_rank % gpus>`; MPI buffers are staged through host memory.

use std::str::FromStr;

use tch::Device;

use crate::error::{EngineError, Result};

/// Where a rank's tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSetting {
    /// CUDA when libtorch sees a GPU, otherwise the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// GPU number `local_rank % gpus` of this node; an error when there is none.
    Cuda,
}

impl FromStr for DeviceSetting {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceSetting::Auto),
            "cpu" => Ok(DeviceSetting::Cpu),
            "cuda" | "gpu" => Ok(DeviceSetting::Cuda),
            other => Err(EngineError::arg(
                "device",
                format!("'{other}' is not a device; expected 'auto', 'cpu' or 'cuda'"),
            )),
        }
    }
}

impl DeviceSetting {
    /// The setting named by `HEATSQL_DEVICE`, or `Auto` when unset.
    pub fn from_env() -> Result<Self> {
        match std::env::var("HEATSQL_DEVICE") {
            Ok(v) => v
                .parse()
                .map_err(|e: EngineError| EngineError::arg("HEATSQL_DEVICE", e.to_string())),
            Err(_) => Ok(DeviceSetting::Auto),
        }
    }

    /// The device this rank uses: `Cuda(local_rank % gpus)` or `Cpu`.
    pub fn resolve(self, local_rank: usize) -> Result<Device> {
        let gpus = if self == DeviceSetting::Cpu {
            0
        } else {
            tch::Cuda::device_count() as usize
        };
        match self {
            DeviceSetting::Cpu => Ok(Device::Cpu),
            _ if gpus > 0 => Ok(Device::Cuda(local_rank % gpus)),
            DeviceSetting::Auto => Ok(Device::Cpu),
            DeviceSetting::Cuda => Err(EngineError::arg(
                "device",
                "'cuda' was requested but libtorch sees no GPU on this node (use 'cpu' or 'auto')",
            )),
        }
    }
}

/// Number of CPU cores on this node (not the cores this process is bound to).
pub fn node_cores() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

/// Compute threads per rank: `HEATSQL_THREADS` if set, else node cores / ranks on the node
/// (at least 1).
pub fn threads_per_rank(local_size: usize) -> usize {
    if let Some(n) = std::env::var("HEATSQL_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return n.max(1);
    }
    (node_cores() / local_size.max(1)).max(1)
}

/// Sets libtorch's intra-op thread count to [`threads_per_rank`]. Called once by
/// [`crate::runtime::start`]. Under `mpirun`'s default core binding a rank can only use the
/// cores it is bound to; launch with `--bind-to none` to let ranks use their share.
pub fn configure_threads(local_size: usize) {
    tch::set_num_threads(threads_per_rank(local_size) as i32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_settings_parse_and_resolve() {
        assert_eq!("CPU".parse::<DeviceSetting>().unwrap(), DeviceSetting::Cpu);
        assert_eq!(" auto".parse::<DeviceSetting>().unwrap(), DeviceSetting::Auto);
        assert_eq!("cuda".parse::<DeviceSetting>().unwrap(), DeviceSetting::Cuda);
        let err = "tpu".parse::<DeviceSetting>().unwrap_err().to_string();
        assert!(err.contains("'tpu'") && err.contains("'cpu'"), "{err}");
        assert_eq!(DeviceSetting::Cpu.resolve(3).unwrap(), Device::Cpu);
        if tch::Cuda::device_count() == 0 {
            assert_eq!(DeviceSetting::Auto.resolve(0).unwrap(), Device::Cpu);
            let err = DeviceSetting::Cuda.resolve(0).unwrap_err().to_string();
            assert!(err.contains("no GPU"), "{err}");
        }
    }

    #[test]
    fn threads_divide_the_node() {
        assert!(threads_per_rank(1) >= 1);
        assert_eq!(threads_per_rank(usize::MAX), 1);
    }
}
