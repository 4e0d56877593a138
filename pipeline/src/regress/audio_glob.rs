//! The audio files that one `audio` string of a manifest names: a file, a
//! folder, or a glob (`*` and `?` within a name, `**` for any number of
//! folders) matched by `globset` over a `walkdir` walk.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use walkdir::{DirEntry, WalkDir};

use crate::config::{audio_files_in, is_audio};

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
/// skipped unless a pattern part that can meet them starts with a dot.
pub fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, ExpandError> {
    let full = base.join(pattern);
    if has_wildcard(pattern) {
        glob_files(&full)
    } else if full.is_dir() {
        Ok(audio_files_in(&full)?)
    } else {
        Ok(vec![full])
    }
}

/// The audio files `pattern` (a path with wildcards) matches.
fn glob_files(pattern: &Path) -> Result<Vec<PathBuf>, ExpandError> {
    // The walk starts at the folders before the first part with a wildcard.
    let mut root = PathBuf::new();
    let mut parts: Vec<String> = Vec::new();
    for component in pattern.components() {
        let text = component.as_os_str().to_string_lossy().into_owned();
        if parts.is_empty() && !matches!(component, Component::Normal(_) if has_wildcard(&text)) {
            root.push(component);
        } else {
            parts.push(text);
        }
    }
    if parts.last().is_some_and(|p| p == "**") {
        parts.push("*".into());
    }
    let matcher = matcher(&parts)?;
    let recursive = parts.iter().any(|p| p == "**");
    let mut found: Vec<PathBuf> = WalkDir::new(&root)
        .min_depth(1)
        .max_depth(if recursive { usize::MAX } else { parts.len() })
        .follow_links(true)
        .into_iter()
        .filter_entry(|entry| !hidden(entry) || dot_part(&parts, entry.depth()))
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
        .collect();
    // What `**` finds in a folder comes before what it finds deeper: the
    // order is that of the folders it spans, then of the parts after it.
    let after = parts.len() - parts.iter().rposition(|p| p == "**").map_or(0, |at| at + 1);
    found.sort_by_cached_key(|path| {
        let components: Vec<Component> = path.components().collect();
        let (spanned, rest) = components.split_at(components.len().saturating_sub(after));
        (PathBuf::from_iter(spanned), PathBuf::from_iter(rest))
    });
    Ok(found)
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

/// Whether a pattern part that can meet entries at `depth` (1: just below
/// the root) asks for a dot-name: the part at that depth, or from a `**`
/// at or above it on, any part after it.
fn dot_part(parts: &[String], depth: usize) -> bool {
    let asks = |part: &String| part.starts_with('.');
    match parts.iter().position(|p| p == "**") {
        Some(globstar) if globstar < depth => parts[globstar..].iter().any(asks),
        _ => parts.get(depth - 1).is_some_and(asks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regress::folder_with;

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
        let dir = folder_with(&[
            "z.flac",
            "a/2.flac",
            "a/1.flac",
            "a/notes.txt",
            "a/deeper/3.flac",
            "b/10.flac",
            ".hidden/4.flac",
            "b/.5.flac",
            "take [2].flac",
            "take 2.flac",
        ]);
        let base = dir.path();
        assert_eq!(names(base, "a/?.flac"), ["a/1.flac", "a/2.flac"]);
        assert_eq!(
            names(base, "*/*.flac"),
            ["a/1.flac", "a/2.flac", "b/10.flac"],
            "no dot-names"
        );
        assert_eq!(names(base, "b/.*.flac"), ["b/.5.flac"]);
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
