//! Where a conversion may write. The output is renamed over whatever is at
//! `--out`, so it must never be the source, hold it or lie inside it, and
//! `--force` may replace only a folder that a conversion wrote.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::atomic::StagedFolder;
use crate::whisper::{WriteError, COMPANION_FILES};

/// Converts `from` with `convert` (which fills the empty folder it is
/// given) into the MLX folder `out`: refused when `out` overlaps the
/// source or already exists (unless `force`, and then only a folder a
/// conversion wrote); written beside `out` and renamed into place, so `out`
/// never holds half a conversion.
pub fn convert_into_folder(
    from: &Path,
    out: &Path,
    force: bool,
    convert: impl FnOnce(&Path, &Path) -> crate::Result<()>,
) -> crate::Result<()> {
    check_apart_from_source(from, out)?;
    if out.symlink_metadata().is_ok() {
        if !force {
            return Err(WriteError::OutputExists(out.to_path_buf()).into());
        }
        check_replaceable(out)?;
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| WriteError::Io { path, error }
    };
    let staged = StagedFolder::beside(out).map_err(io(out))?;
    convert(from, staged.path())?;
    staged.finish(out).map_err(io(out))?;
    Ok(())
}

/// The files a conversion writes besides the tokenizer companions.
const WRITTEN_FILES: [&str; 2] = ["config.json", "weights.safetensors"];

/// Refuses an output folder that is the source, holds it or lies inside it,
/// compared after symbolic links and `..` are resolved.
pub(crate) fn check_apart_from_source(from: &Path, out: &Path) -> Result<(), WriteError> {
    let source = resolved(from);
    let target = resolved(out);
    let relation = if source == target {
        "the source"
    } else if source.starts_with(&target) {
        "a folder holding the source"
    } else if target.starts_with(&source) {
        "inside the source"
    } else {
        return Ok(());
    };
    Err(WriteError::OverlapsSource {
        out: out.to_path_buf(),
        from: from.to_path_buf(),
        relation,
    })
}

/// Refuses to replace anything at `out` but a folder holding only what a
/// conversion writes: `config.json`, `weights.safetensors` and tokenizer
/// companion files. Anything else there would be lost with the old folder.
pub(crate) fn check_replaceable(out: &Path) -> Result<(), WriteError> {
    let refuse = |reason: String| WriteError::NotConverterOutput {
        out: out.to_path_buf(),
        reason,
    };
    let io = |error| WriteError::Io {
        path: out.to_path_buf(),
        error,
    };
    if !fs::symlink_metadata(out).map_err(io)?.is_dir() {
        return Err(refuse("it is not a folder".into()));
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(out).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let known =
            WRITTEN_FILES.contains(&name.as_str()) || COMPANION_FILES.contains(&name.as_str());
        if !known || !entry.file_type().map_err(io)?.is_file() {
            return Err(refuse(format!(
                "it holds {name}, which a conversion does not write"
            )));
        }
        names.push(name);
    }
    if let Some(missing) = WRITTEN_FILES
        .iter()
        .find(|f| !names.iter().any(|n| n == *f))
    {
        return Err(refuse(format!("it has no {missing}")));
    }
    Ok(())
}

/// `path` made absolute with symbolic links and `..` resolved as far as it
/// exists; components that do not exist yet are taken as written.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            // `out` is already resolved, so its parent is the real one.
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => {
                out.push(other);
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}
