//! The compute device setting and libtorch's thread count.
//!
//! Device is a setting, not a code path: every operation runs the same tch calls on
//! `cpu` or `cuda:<local_rank % gpus>`; MPI buffers are staged through host memory.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use tch::{Device, Tensor};

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

    /// The device this rank uses: `Cuda(local_rank % gpus)` or `Cpu`. `Cuda` without a usable
    /// GPU is an error saying why: libtorch's CUDA backend is not loaded (the first missing
    /// library, and how to install them), or it sees no GPU.
    pub fn resolve(self, local_rank: usize) -> Result<Device> {
        let gpus = if self == DeviceSetting::Cpu {
            0
        } else {
            crate::cuda::device_count()
        };
        match self {
            DeviceSetting::Cpu => Ok(Device::Cpu),
            _ if gpus > 0 => Ok(Device::Cuda(local_rank % gpus)),
            DeviceSetting::Auto => Ok(Device::Cpu),
            DeviceSetting::Cuda => Err(EngineError::arg(
                "device",
                match crate::cuda::load() {
                    crate::cuda::CudaSupport::NotLoaded { reason } => format!(
                        "'cuda' was requested but libtorch's CUDA support is not loaded: {reason}; {}, or use 'cpu' or 'auto'",
                        crate::cuda::INSTALL_HINT
                    ),
                    crate::cuda::CudaSupport::Loaded { .. } => {
                        "'cuda' was requested but libtorch sees no GPU on this node \
                         (CUDA support is loaded; check nvidia-smi and CUDA_VISIBLE_DEVICES, or use 'cpu' or 'auto')"
                            .to_string()
                    }
                },
            )),
        }
    }

    /// Whether a rank with this setting computes on a GPU (one is visible and the setting is
    /// not `cpu`).
    pub fn uses_gpu(self) -> bool {
        self != DeviceSetting::Cpu && crate::cuda::device_count() > 0
    }
}

/// `cpu` or `cuda:N`, as messages, `--info` and EXPLAIN ANALYZE name a device.
pub fn name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

/// Bytes this process copied between host memory and GPUs, counted by [`copy_to`] and
/// [`upload`] (every crossing in the engine, the loads and the outputs goes through them).
/// Table functions report the difference over their call in `EXPLAIN ANALYZE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Host → GPU bytes.
    pub host_to_device: u64,
    /// GPU → host bytes.
    pub device_to_host: u64,
}

impl Transfers {
    /// What was copied since `earlier` (an earlier [`transfers`]).
    pub fn since(self, earlier: Transfers) -> Transfers {
        Transfers {
            host_to_device: self.host_to_device.saturating_sub(earlier.host_to_device),
            device_to_host: self.device_to_host.saturating_sub(earlier.device_to_host),
        }
    }
}

static HOST_TO_DEVICE: AtomicU64 = AtomicU64::new(0);
static DEVICE_TO_HOST: AtomicU64 = AtomicU64::new(0);

/// The bytes copied so far by this process (see [`Transfers`]).
pub fn transfers() -> Transfers {
    Transfers {
        host_to_device: HOST_TO_DEVICE.load(Ordering::Relaxed),
        device_to_host: DEVICE_TO_HOST.load(Ordering::Relaxed),
    }
}

/// Counts a copy of `t` from its device to `to`.
fn count(t: &Tensor, to: Device) {
    let bytes = (t.numel() * t.kind().elt_size_in_bytes()) as u64;
    match (t.device(), to) {
        (Device::Cpu, Device::Cpu) => {}
        (Device::Cpu, _) => {
            HOST_TO_DEVICE.fetch_add(bytes, Ordering::Relaxed);
        }
        (_, Device::Cpu) => {
            DEVICE_TO_HOST.fetch_add(bytes, Ordering::Relaxed);
        }
        // GPU to GPU: neither side is the host.
        _ => {}
    }
}

/// `t` on `device` (itself when it is there already), the bytes counted when it crosses between
/// the host and a GPU.
pub fn copy_to(t: &Tensor, device: Device) -> Tensor {
    if t.device() == device {
        return t.shallow_clone();
    }
    count(t, device);
    t.to_device(device)
}

/// [`copy_to`] as a method: `t.moved_to(device)` is `t.to_device(device)` with the bytes
/// counted in [`transfers`]. The engine and the table functions move tensors only this way.
pub trait MoveTo {
    /// The tensor on `device` (see [`copy_to`]).
    fn moved_to(&self, device: Device) -> Tensor;
}

impl MoveTo for Tensor {
    fn moved_to(&self, device: Device) -> Tensor {
        copy_to(self, device)
    }
}

/// A host tensor moved to `device` for good (a rank's rows after a load): to a GPU through
/// page-locked (pinned) host memory and an asynchronous copy, which libtorch orders before any
/// later use of the result; elsewhere as [`copy_to`]. When pinning fails (pinned memory is
/// scarce), a plain copy.
pub fn upload(t: &Tensor, device: Device) -> Tensor {
    if t.device() != Device::Cpu || !matches!(device, Device::Cuda(_)) {
        return copy_to(t, device);
    }
    count(t, device);
    t.f_pin_memory(device)
        .and_then(|pinned| pinned.f_to_device_(device, pinned.kind(), true, false))
        .unwrap_or_else(|_| t.to_device(device))
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
    threads_from_env().unwrap_or_else(|| (node_cores() / local_size.max(1)).max(1))
}

/// `HEATSQL_THREADS`, when set to a number (at least 1).
fn threads_from_env() -> Option<usize> {
    std::env::var("HEATSQL_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(|n| n.max(1))
}

/// libtorch's intra-op threads on a rank that computes on a GPU (unless `HEATSQL_THREADS` says
/// otherwise): the GPU does the arithmetic; the host threads only launch kernels, decode and
/// stage data.
pub const GPU_RANK_THREADS: usize = 4;

/// libtorch's intra-op threads for a rank: `HEATSQL_THREADS` if set; else its share of the
/// node's cores ([`threads_per_rank`]), at most [`GPU_RANK_THREADS`] when it uses a GPU.
pub fn libtorch_threads(local_size: usize, gpu: bool) -> usize {
    match threads_from_env() {
        Some(n) => n,
        None if gpu => threads_per_rank(local_size).min(GPU_RANK_THREADS),
        None => threads_per_rank(local_size),
    }
}

/// Sets libtorch's intra-op thread count ([`libtorch_threads`], for the device that
/// `HEATSQL_DEVICE` selects). Called once by [`crate::runtime::start`]. Under `mpirun`'s
/// default core binding a rank can only use the cores it is bound to; launch with
/// `--bind-to none` to let ranks use their share.
pub fn configure_threads(local_size: usize) {
    let gpu = DeviceSetting::from_env().is_ok_and(DeviceSetting::uses_gpu);
    tch::set_num_threads(libtorch_threads(local_size, gpu) as i32);
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
        if crate::cuda::device_count() == 0 {
            assert_eq!(DeviceSetting::Auto.resolve(0).unwrap(), Device::Cpu);
            assert!(!DeviceSetting::Auto.uses_gpu() && !DeviceSetting::Cuda.uses_gpu());
            let err = DeviceSetting::Cuda.resolve(0).unwrap_err().to_string();
            // Why, on this machine: the backend is missing (and how to install it), or no GPU.
            let why = match crate::cuda::load() {
                crate::cuda::CudaSupport::NotLoaded { reason } => reason.clone(),
                crate::cuda::CudaSupport::Loaded { .. } => "libtorch sees no GPU on this node".into(),
            };
            assert!(err.contains("'cuda' was requested but") && err.contains(&why), "{err}");
        }
    }

    #[test]
    fn copies_within_the_host_are_not_transfers() {
        let before = transfers();
        let t = Tensor::ones([4, 3], (tch::Kind::Double, Device::Cpu));
        let same = copy_to(&t, Device::Cpu);
        let up = upload(&t, Device::Cpu);
        assert_eq!(same.data_ptr(), t.data_ptr(), "no copy on the same device");
        assert_eq!(up.data_ptr(), t.data_ptr());
        assert_eq!(transfers().since(before), Transfers::default());
        let later = Transfers {
            host_to_device: 96,
            device_to_host: 8,
        };
        assert_eq!(
            later.since(Transfers {
                host_to_device: 32,
                device_to_host: 8
            }),
            Transfers {
                host_to_device: 64,
                device_to_host: 0
            }
        );
    }

    #[test]
    fn threads_divide_the_node_and_stay_few_on_gpu_ranks() {
        if std::env::var("HEATSQL_THREADS").is_ok() {
            return;
        }
        assert!(threads_per_rank(1) >= 1);
        assert_eq!(threads_per_rank(usize::MAX), 1);
        assert_eq!(libtorch_threads(1, false), threads_per_rank(1));
        assert_eq!(libtorch_threads(1, true), threads_per_rank(1).min(GPU_RANK_THREADS));
    }
}
