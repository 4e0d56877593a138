//! The MLX build a binary runs on, as `pipeline info` and the binding
//! benchmark print it.

use std::fmt::Write as _;

/// The MLX version, devices and the BLAS that serves `cblas_sgemm`, one
/// line each.
pub fn report() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "MLX {}", mlx::version());
    let _ = writeln!(out, "default device: {:?}", mlx::default_device());
    let _ = writeln!(
        out,
        "gpu available: {}",
        mlx::is_available(mlx::Device::Gpu)
    );
    let _ = writeln!(
        out,
        "instruction set: {} (this CPU: {}, cap: {})",
        mlx::kernels::active_isa(),
        mlx::kernels::supported_isa(),
        match mlx::kernels::isa_cap() {
            mlx::kernels::Isa::Avx512Vnni => "none".to_string(),
            cap => format!("{cap}, from MLX_ASR_ISA or the API"),
        }
    );
    let _ = writeln!(out, "cblas_sgemm served by: {}", mlx::blas_provider());
    let _ = match mlx::openblas_config() {
        Some(config) => writeln!(out, "OpenBLAS: {config}"),
        None => writeln!(out, "OpenBLAS: not linked (reference BLAS, slow fp32 GEMM)"),
    };
    out
}
