//! Shared build script: embeds libtorch's library directory as an rpath in every binary, test
//! and example of the crate, so nothing needs `LD_LIBRARY_PATH` at run time.
//!
//! `torch-sys` (a direct dependency of each crate using this script) publishes the directory as
//! `DEP_TCH_LIBTORCH_LIB`; `LIBTORCH` (from `.cargo/config.toml`) is the fallback.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .ok()
        .or_else(|| std::env::var("LIBTORCH").ok().map(|p| format!("{p}/lib")));
    if let Some(dir) = dir {
        // Resolve the `.torch` link so the rpath stays valid if the link is re-pointed.
        let dir = std::fs::canonicalize(&dir)
            .map(|p| p.display().to_string())
            .unwrap_or(dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
