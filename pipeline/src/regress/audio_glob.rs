//! The audio files that one `audio` string of a manifest names: a file, a
//! folder, or a glob (`*` and `?` within a name, `**` for any number of
//! folders) matched by `globset` over a `walkdir` walk.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use walkdir::{DirEntry, WalkDir};

use crate::config::is_audio;

/// Why an `audio` string could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Pattern(#[from] globset::Error),
}

/// Only `*` and `?` make a pattern (`**` is two of them); brackets and
/// braces stay literal, so that `take [2].wav` names itself.
fn has_wildcard(part: &str) -> bool {
    part.contains(['*', '?'])
}

/// The files an `audio` string names: a file (kept even when missing, so
/// that the run reports it), the audio files directly inside a folder, or
/// the audio files a glob matches. Files come in name order, a folder's own
/// files before those of its subfolders; names starting with a dot are
/// skipped unless the pattern's part for them starts with a dot (`**` never
/// enters such folders).
pub fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, ExpandError> {
    let full = base.join(pattern);
    if !has_wildcard(pattern) {
        if !full.is_dir() {
            return Ok(vec![full]);
        }
        let mut inside: Vec<PathBuf> = std::fs::read_dir(&full)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        inside.retain(|p| p.is_file() && is_audio(p));
        inside.sort();
        return Ok(inside);
    }
    // The walk starts at the folders before the first part with a wildcard.
    let mut root = PathBuf::new();
    let mut parts: Vec<String> = Vec::new();
    for component in full.components() {
        let text = component.as_os_str().to_string_lossy().into_owned();
        if parts.is_empty() && !matches!(component, Component::Normal(_) if has_wildcard(&text)) {
            root.push(component);
        } else {
            parts.push(text);
        }
    }
    let matcher = matcher(&parts)?;
    let recursive = parts.iter().any(|p| p == "**");
    let walk = WalkDir::new(&root)
        .min_depth(1)
        .max_depth(if recursive { usize::MAX } else { parts.len() })
        .follow_links(true)
        .sort_by(|a, b| {
            let folder = |e: &DirEntry| e.file_type().is_dir();
            (folder(a), a.file_name()).cmp(&(folder(b), b.file_name()))
        })
        .into_iter()
        .filter_entry(|entry| !hidden(entry) || dot_part(&parts, entry.depth()));
    Ok(walk
        // Unreadable folders hold nothing to match.
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file() && is_audio(entry.path()))
        .filter(|entry| {
            entry
                .path()
                .strip_prefix(&root)
                .is_ok_and(|relative| matcher.is_match(relative))
        })
        .map(DirEntry::into_path)
        .collect())
}

/// The parts below the walk's root as one glob, `/` matched only by `/`.
fn matcher(parts: &[String]) -> Result<GlobMatcher, globset::Error> {
    let pattern: Vec<String> = parts.iter().map(|part| glob_part(part)).collect();
    Ok(GlobBuilder::new(&pattern.join("/"))
        .literal_separator(true)
        .backslash_escape(false)
        .build()?
        .compile_matcher())
}

/// One part in globset's syntax: the text between wildcards escaped.
fn glob_part(part: &str) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    for c in part.chars() {
        if matches!(c, '*' | '?') {
            out += &globset::escape(&literal);
            literal.clear();
            out.push(c);
        } else {
            literal.push(c);
        }
    }
    out + &globset::escape(&literal)
}

fn hidden(entry: &DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with('.')
}

/// Whether the pattern part that meets entries at `depth` (1: just below
/// the root) asks for a dot-name; after a `**` no part has a fixed depth.
fn dot_part(parts: &[String], depth: usize) -> bool {
    let before = &parts[..(depth - 1).min(parts.len())];
    !before.iter().any(|p| p == "**")
        && parts
            .get(depth - 1)
            .is_some_and(|part| part.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regress::touch;

    fn names(base: &Path, pattern: &str) -> Vec<String> {
        expand(base, pattern)
            .unwrap()
            .iter()
            .map(|p| {
                let relative = p.strip_prefix(base).unwrap();
                relative.to_string_lossy().into_owned()
            })
            .collect()
    }

    #[test]
    fn globs_list_audio_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for f in [
            "z.flac",
            "a/2.flac",
            "a/1.flac",
            "a/notes.txt",
            "a/deeper/3.flac",
            "b/10.flac",
            ".hidden/4.flac",
            "a/.5.flac",
            "take [2].flac",
            "take 2.flac",
        ] {
            touch(&base.join(f));
        }
        assert_eq!(names(base, "a/?.flac"), ["a/1.flac", "a/2.flac"]);
        assert_eq!(
            names(base, "*/*.flac"),
            ["a/1.flac", "a/2.flac", "b/10.flac"],
            "no dot-names"
        );
        assert_eq!(names(base, "a/.*.flac"), ["a/.5.flac"]);
        assert_eq!(
            names(base, "**/*.flac"),
            [
                "take 2.flac",
                "take [2].flac",
                "z.flac",
                "a/1.flac",
                "a/2.flac",
                "a/deeper/3.flac",
                "b/10.flac"
            ],
            "a folder's files before its subfolders'"
        );
        assert_eq!(
            names(base, "a/**"),
            ["a/1.flac", "a/2.flac", "a/deeper/3.flac"]
        );
        assert_eq!(
            names(base, "take [2]*"),
            ["take [2].flac"],
            "brackets are literal"
        );
        assert!(names(base, "nothing/*.flac").is_empty());
        assert_eq!(
            names(base, "a"),
            ["a/1.flac", "a/2.flac"],
            "a folder's own files"
        );
        assert_eq!(
            names(base, "gone.wav"),
            ["gone.wav"],
            "a missing file is kept"
        );
    }
}
