//! Regression runs: a manifest names a set of audio files and the settings
//! to transcribe them with; every transcript is rendered as a stable JSON
//! snapshot (probabilities redacted, times rounded to milliseconds) in an
//! insta-compatible `.snap` file and compared with the stored one.
//!
//! [`Manifest::from_file`] reads and validates a manifest, [`run`] checks
//! every item with any transcriber (tests pass a fake one) and
//! [`run_pipeline`] with the manifest's model. Both return a [`Report`];
//! nothing is printed here: progress and per-item results go to the
//! caller's callback as [`Event`]s.
//!
//! One job per file: `manifest` reads a manifest and `audio_glob` lists
//! the files its `audio` patterns name; `snapshot` renders a transcript as
//! a snapshot body and `snapshot_file` reads and writes `.snap` files;
//! `runner` checks the items, `report` holds what it found and `diff`
//! shows what changed.

mod audio_glob;
mod diff;
mod manifest;
mod report;
mod runner;
mod snapshot;
mod snapshot_file;

pub use diff::{line_diff, word_diff};
pub use manifest::{Item, Manifest, ManifestError};
pub use report::{ItemReport, Report, Status};
pub use runner::{run, run_pipeline, Event, RunOptions, TranscribeItem};
pub use snapshot::render_snapshot;
pub use snapshot_file::SnapshotFile;

/// A temporary folder holding empty files at the given relative paths.
#[cfg(test)]
fn folder_with(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    dir
}
