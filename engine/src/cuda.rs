//! libtorch's CUDA backend, loaded at run time: one binary for CPU and GPU nodes.
//!
//! tch names `libtorch_cuda.so` on the link line, but no symbol of it is used, so the
//! linker's `--as-needed` drops it and a plain build never loads the CUDA backend:
//! `tch::Cuda::device_count()` is then 0 even on a GPU node. [`load`] opens it at start-up
//! (`dlopen` with `RTLD_NOW | RTLD_GLOBAL`) from the directory of the libtorch this process
//! runs with; its static initialisers register the CUDA hooks with libtorch, after which
//! libtorch sees the GPUs. On the lean CPU install the library or one of its dependencies
//! (cuBLAS, cuDNN, NCCL, …) is missing: loading fails, the process goes on on the CPU, and
//! [`CudaSupport`] keeps the reason (the loader's message names the first missing library)
//! for `heatsql --info` and for the error of `device => 'cuda'`.
//!
//! Why not `--no-as-needed` in CUDA builds: that makes the binary fail to start wherever the
//! CUDA libraries are absent, so CPU and GPU nodes would need different binaries.
//!
//! `HEATSQL_LIBTORCH_CUDA` overrides the library's path, or disables loading with `0`.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that names `libtorch_cuda.so` (or disables loading it with `0`).
pub const LIBRARY_ENV: &str = "HEATSQL_LIBTORCH_CUDA";

/// How to get the CUDA libraries, for messages.
pub const INSTALL_HINT: &str =
    "install libtorch's CUDA libraries with `bash scripts/setup.sh --cuda` (the README commands with HEATSQL_CUDA=1)";

/// Whether libtorch's CUDA backend is loaded in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaSupport {
    /// `libtorch_cuda.so` and its dependencies loaded from this path.
    Loaded {
        /// The library loaded.
        library: PathBuf,
    },
    /// Not loaded; the reason names what is missing.
    NotLoaded {
        /// Why (the loader's message, or the missing file).
        reason: String,
    },
}

impl CudaSupport {
    /// Whether the backend is loaded.
    pub fn is_loaded(&self) -> bool {
        matches!(self, CudaSupport::Loaded { .. })
    }

    /// One line for `--info`: `loaded from PATH` or `not loaded (REASON; how to install)`.
    pub fn describe(&self) -> String {
        match self {
            CudaSupport::Loaded { library } => format!("loaded from {}", library.display()),
            CudaSupport::NotLoaded { reason } => format!("not loaded ({reason}; {INSTALL_HINT})"),
        }
    }
}

static SUPPORT: OnceLock<CudaSupport> = OnceLock::new();

/// Loads libtorch's CUDA backend once per process (later calls return the first outcome).
/// Called by [`crate::runtime::start`] and before a device is resolved.
pub fn load() -> &'static CudaSupport {
    SUPPORT.get_or_init(open)
}

fn open() -> CudaSupport {
    let library = match std::env::var(LIBRARY_ENV) {
        Ok(v) if v.trim() == "0" => {
            return CudaSupport::NotLoaded {
                reason: format!("disabled by {LIBRARY_ENV}=0"),
            };
        }
        Ok(v) if !v.trim().is_empty() => PathBuf::from(v.trim()),
        _ => match libtorch_dir() {
            Some(dir) => dir.join("libtorch_cuda.so"),
            None => {
                return CudaSupport::NotLoaded {
                    reason: "libtorch_cpu.so is not mapped in this process, so libtorch's directory is unknown".into(),
                };
            }
        },
    };
    if !library.exists() {
        return CudaSupport::NotLoaded {
            reason: format!(
                "{} does not exist: this libtorch has no CUDA backend",
                library.display()
            ),
        };
    }
    match dlopen(&library) {
        Ok(()) => CudaSupport::Loaded { library },
        Err(reason) => CudaSupport::NotLoaded { reason },
    }
}

/// `dlopen(path, RTLD_NOW | RTLD_GLOBAL)`; the handle is kept for the life of the process.
fn dlopen(path: &Path) -> Result<(), String> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a valid NUL-terminated path; dlopen has no other preconditions. The
    // library's initialisers run here, before any CUDA tensor exists.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if !handle.is_null() {
        return Ok(());
    }
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the loader, read
    // before any other dl* call on this thread.
    let err = unsafe { libc::dlerror() };
    if err.is_null() {
        return Err(format!("{} did not load", path.display()));
    }
    // SAFETY: as above, `err` is a valid NUL-terminated C string.
    let message = unsafe { CStr::from_ptr(err) };
    Err(message.to_string_lossy().into_owned())
}

/// The directory of the libtorch this process runs with: where the loaded `libtorch_cpu.so`
/// lives (read from `/proc/self/maps`).
pub fn libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
}

/// The version of the libtorch this process runs with, from `torch/version.py` beside its
/// `lib/` directory (PyPI wheels), e.g. `2.13.0+cu130`; `None` for other layouts.
pub fn libtorch_version() -> Option<String> {
    let text = std::fs::read_to_string(libtorch_dir()?.parent()?.join("version.py")).ok()?;
    version_of(&text)
}

/// `__version__ = '…'` in a `version.py`.
fn version_of(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("__version__"))
        .map(|rest| rest.trim_start_matches([' ', '=', ':', 's', 't', 'r']).trim())
        .map(|v| v.trim_matches(['\'', '"']).to_string())
        .filter(|v| !v.is_empty())
}

/// The number of GPUs libtorch sees (0 without the CUDA backend); loads it first.
pub fn device_count() -> usize {
    load();
    tch::Cuda::device_count().max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_version_py() {
        assert_eq!(
            version_of("from typing import Optional\n__version__ = '2.13.0+cu130'\ndebug = False\n").as_deref(),
            Some("2.13.0+cu130")
        );
        assert_eq!(version_of("__version__: str = \"2.11.0\"\n").as_deref(), Some("2.11.0"));
        assert_eq!(version_of("debug = False\n"), None);
    }

    #[test]
    fn the_outcome_is_kept_and_explained() {
        let first = load().clone();
        assert_eq!(load(), &first, "loaded once");
        assert!(libtorch_dir().is_some(), "the test binary links libtorch_cpu.so");
        match &first {
            CudaSupport::Loaded { library } => assert!(library.ends_with("libtorch_cuda.so")),
            CudaSupport::NotLoaded { reason } => assert!(!reason.is_empty()),
        }
        assert!(
            first
                .describe()
                .starts_with(if first.is_loaded() { "loaded" } else { "not loaded (" })
        );
        let missing = CudaSupport::NotLoaded {
            reason: "x.so: cannot open".into(),
        };
        assert_eq!(
            missing.describe(),
            format!("not loaded (x.so: cannot open; {INSTALL_HINT})")
        );
    }

    #[test]
    fn loaded_support_is_libtorchs_cuda_backend() {
        if !load().is_loaded() || device_count() > 0 {
            return;
        }
        // Loaded without a GPU: libtorch now knows CUDA (the hooks registered) and says why it
        // cannot use it, instead of saying it was built without CUDA.
        let err = tch::Tensor::f_zeros([1], (tch::Kind::Float, tch::Device::Cuda(0)))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.is_empty());
        assert!(!err.contains("not linked with support for cuda"), "{err}");
    }

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let err = dlopen(Path::new("/nonexistent/libtorch_cuda.so")).unwrap_err();
        assert!(err.contains("/nonexistent/libtorch_cuda.so"), "{err}");
    }
}
