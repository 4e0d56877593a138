//! The output directory, tried before anything is transcribed: a run that
//! cannot write its outputs is told so at once, not after hours of work.
//! Checking creates nothing: the run creates the directory when it writes.

use std::path::Path;

/// Why files cannot be written in `dir`, if they cannot: the directory, or
/// the nearest existing folder above it (where the run would create it),
/// must take a probe file, which is removed again.
pub(super) fn output_dir_problem(dir: &Path) -> Option<String> {
    let shown = dir.display();
    let existing = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Some(format!(
            "output_dir: cannot create {shown}: {} is not a directory",
            existing.display()
        ));
    }
    let probe = existing.join(format!(".mlx-asr-write-probe-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match written {
        Ok(_) => {
            // Removing what was just created only fails if something else did.
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if existing == dir => Some(format!("output_dir: cannot write in {shown}: {e}")),
        Err(e) => Some(format!(
            "output_dir: cannot create {shown}: {} refuses new files: {e}",
            existing.display()
        )),
    }
}
