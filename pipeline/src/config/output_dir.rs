//! The output directory, tried before anything is transcribed: a run that
//! cannot write its outputs is told so at once, not after hours of work.

use std::path::Path;

/// Why files cannot be written in `dir`, if they cannot: it is created
/// when missing (as the run would), and a probe file written and removed.
pub(super) fn output_dir_problem(dir: &Path) -> Option<String> {
    let shown = dir.display();
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Some(format!("output_dir: cannot create {shown}: {e}"));
    }
    let probe = dir.join(format!(".mlx-asr-write-probe-{}", std::process::id()));
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
        Err(e) => Some(format!("output_dir: cannot write in {shown}: {e}")),
    }
}
