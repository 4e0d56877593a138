//! `pipeline info`: the MLX build this binary runs on.

use anyhow::Result;

/// Prints the MLX version, devices and the BLAS that serves `cblas_sgemm`.
pub fn run() -> Result<()> {
    print!("{}", mlx_asr::build_info::report());
    Ok(())
}
