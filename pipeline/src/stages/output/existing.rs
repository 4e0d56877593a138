//! What an output file already in place is, for resuming a run. Outputs
//! are renamed into place whole, so one that cannot be a finished output
//! (empty, or JSON that does not parse) was written by something else or
//! damaged since.

use std::path::Path;

use super::Format;

/// An output file found in place (or not).
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    Missing,
    Finished,
    /// Not a finished output, and why.
    Damaged(&'static str),
}

/// What is at `path`, an output in `format`.
pub fn existing_output(path: &Path, format: Format) -> Existing {
    let Ok(meta) = std::fs::metadata(path) else {
        return Existing::Missing;
    };
    if !meta.is_file() {
        Existing::Damaged("is not a regular file")
    // SRT and RTTM are the formats whose output of a silent recording is empty.
    } else if meta.len() == 0 && !matches!(format, Format::Srt | Format::Rttm) {
        Existing::Damaged("is empty")
    } else if format == Format::Json && !parses_as_json(path) {
        Existing::Damaged("is not valid JSON")
    } else {
        Existing::Finished
    }
}

fn parses_as_json(path: &Path) -> bool {
    std::fs::read(path)
        .is_ok_and(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).is_ok())
}
