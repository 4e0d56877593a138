//! Which files count as audio: by their container's extension.

use std::path::{Path, PathBuf};

/// Extensions of the containers the audio reader opens.
const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "ogg", "oga", "m4a", "mp4", "aac", "caf", "aiff", "aif",
];

/// Whether `path` names a container the audio stage opens.
pub fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The audio files directly inside `folder`, in name order.
pub fn audio_files_in(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut inside: Vec<PathBuf> = std::fs::read_dir(folder)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    inside.retain(|p| p.is_file() && is_audio(p));
    inside.sort();
    Ok(inside)
}
