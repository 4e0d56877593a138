//! The inputs of a run, checked before anything is transcribed: each an
//! audio file or a directory of them, no file listed twice, no two files
//! writing the same outputs.

use std::collections::{BTreeMap, HashSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::Config;
use crate::stages::audio::audio_files_in;

/// The audio files of the inputs, each once, in order, and the files
/// listed again after their first time.
struct Listing {
    files: Vec<PathBuf>,
    repeated: Vec<PathBuf>,
}

impl Config {
    /// The audio files to transcribe: the inputs, with each directory
    /// replaced by the audio files directly inside it (sorted by name). A
    /// file listed more than once (as itself or inside a directory) is
    /// transcribed once, with a warning.
    pub fn input_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let listing = self.listing()?;
        for path in &listing.repeated {
            tracing::warn!(input = %path.display(), "listed more than once: transcribed once");
        }
        Ok(listing.files)
    }

    fn listing(&self) -> std::io::Result<Listing> {
        let mut listing = Listing {
            files: Vec::new(),
            repeated: Vec::new(),
        };
        let mut seen = HashSet::new();
        for input in &self.inputs {
            for file in audio_files(input)? {
                let identity = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                if seen.insert(identity) {
                    listing.files.push(file);
                } else {
                    listing.repeated.push(file);
                }
            }
        }
        Ok(listing)
    }

    /// Inputs that are missing, not regular files, directories without
    /// audio, or files whose outputs would overwrite each other's.
    pub(super) fn input_problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .inputs
            .iter()
            .filter_map(|p| input_problem(p))
            .collect();
        if self.inputs.is_empty() {
            out.push("input: no files given".into());
        }
        if let (Some(dir), true, Ok(listing)) = (&self.output_dir, out.is_empty(), self.listing()) {
            out.extend(same_outputs(&listing.files, dir));
        }
        out
    }
}

/// The file name outputs of `input` take, before their extension.
pub fn output_stem(input: &Path) -> String {
    input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audio".into())
}

/// `input` itself, or the audio files directly inside it when it is a
/// directory.
fn audio_files(input: &Path) -> std::io::Result<Vec<PathBuf>> {
    if input.is_dir() {
        audio_files_in(input)
    } else {
        Ok(vec![input.to_path_buf()])
    }
}

fn input_problem(input: &Path) -> Option<String> {
    let shown = input.display();
    match std::fs::metadata(input) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Some(format!("input: no such file or directory {shown}"))
        }
        Err(e) => Some(format!("input: {shown}: {e}")),
        Ok(m) if m.is_file() => None,
        Ok(m) if !m.is_dir() => Some(format!(
            "input: {shown} is not a regular file (a device, pipe or socket)"
        )),
        Ok(_) => match audio_files(input) {
            Err(e) => Some(format!("input: {shown}: {e}")),
            Ok(files) if files.is_empty() => {
                Some(format!("input: {shown} is a directory with no audio files"))
            }
            Ok(_) => None,
        },
    }
}

/// Files whose outputs in `dir` would have the same names.
fn same_outputs(files: &[PathBuf], dir: &Path) -> Vec<String> {
    let mut by_stem: BTreeMap<String, Vec<&Path>> = BTreeMap::new();
    for file in files {
        by_stem.entry(output_stem(file)).or_default().push(file);
    }
    by_stem
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(stem, files)| {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            format!(
                "input: {} would write the same outputs {}.* (each overwriting the other): rename one or run them apart",
                names.join(", "),
                dir.join(stem).display()
            )
        })
        .collect()
}
