//! The Python MLX peer: `scripts/bench_peer_mlx.py` takes the binding's
//! measurements with Python MLX and prints them as one JSON object keyed
//! like `BenchRow::key`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that runs the peer, if one is set up.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLX_ASR_PEER_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = asr_converters::registry::cache_dir().join("peers-venv/bin/python");
    venv.exists().then_some(venv)
}

/// Runs the peer script with `python` and returns its measurements by key.
pub fn measure(python: &Path) -> Result<BTreeMap<String, f64>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_peer_mlx.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script);
    if mlx::openblas_config().is_some() {
        // The same OpenBLAS that serves our cblas_sgemm.
        cmd.env("LD_PRELOAD", mlx::blas_provider());
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed: {}",
            python.display(),
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("peer output is not a JSON object of numbers: {e}"))
}
