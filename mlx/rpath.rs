//! Build script shared by every workspace package that links binaries,
//! tests or examples against MLX. Cargo does not forward a library's
//! `rustc-link-arg` to its dependents, so each such package re-emits the
//! rpath (libmlx's folder and the OpenBLAS forwarder's) that the `mlx` crate
//! publishes through its `links` metadata.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MLX_RPATH");
    if let Ok(dirs) = std::env::var("DEP_MLX_RPATH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dirs}");
    }
}
