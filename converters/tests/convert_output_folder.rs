//! `convert --force` must never remove the source or anything it did not
//! write: an output that is, holds or lies inside the source is refused,
//! and `--force` replaces only a folder that a conversion wrote.

use std::fs;
use std::path::{Path, PathBuf};

use asr_converters::whisper::{convert_whisper, OutputDtype, WriteOptions};

/// A copy of the small random Hugging Face checkpoint at `dest`.
fn source_folder(dest: &Path) -> PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-whisper/hf-safetensors");
    fs::create_dir_all(dest).unwrap();
    for entry in fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    dest.to_path_buf()
}

fn convert(from: &Path, out: &Path, force: bool) -> Result<(), String> {
    let opts = WriteOptions {
        dtype: OutputDtype::F32,
        quantization: None,
        force,
    };
    convert_whisper(from, out, &opts, &|_, _| {})
        .map(drop)
        .map_err(|e| e.to_string())
}

/// How many entries `dir` holds: staging folders left behind would count.
fn entries(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn the_source_itself_is_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_folder(&dir.path().join("x"));
    let err = convert(&src, &src, true).unwrap_err();
    assert!(err.contains("is the source ("), "{err}");
    // The same folder spelled another way.
    let err = convert(&src, &src.join("../x/."), true).unwrap_err();
    assert!(err.contains("is the source ("), "{err}");
    assert_eq!(entries(&src), 3, "nothing written into the source");
    assert_eq!(entries(dir.path()), 1, "nothing written beside it");
}

#[test]
fn a_folder_holding_the_source_is_refused_even_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let sb = dir.path().join("sb");
    let src = source_folder(&sb.join("src"));
    fs::write(sb.join("notes.txt"), "mine").unwrap();
    let err = convert(&src, &sb, true).unwrap_err();
    assert!(err.contains("is a folder holding the source"), "{err}");
    assert!(err.contains(&sb.display().to_string()), "{err}");
    assert_eq!(fs::read_to_string(sb.join("notes.txt")).unwrap(), "mine");
    assert!(src.join("model.safetensors").is_file());
    assert_eq!(entries(&sb), 2, "nothing written beside the source");
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_to_the_source_is_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_folder(&dir.path().join("x"));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    let err = convert(&src, &link, true).unwrap_err();
    assert!(err.contains("is the source ("), "{err}");
    assert!(src.join("model.safetensors").is_file());
}

#[test]
fn an_output_inside_the_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_folder(&dir.path().join("x"));
    let err = convert(&src, &src.join("mlx"), false).unwrap_err();
    assert!(err.contains("is inside the source"), "{err}");
    assert!(!src.join("mlx").exists());
}

#[test]
fn force_replaces_only_a_folder_a_conversion_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_folder(&dir.path().join("src"));
    let out = dir.path().join("out");

    fs::create_dir(&out).unwrap();
    let err = convert(&src, &out, true).unwrap_err();
    assert!(err.contains("it has no config.json"), "{err}");

    fs::write(out.join("thesis.tex"), "years of work").unwrap();
    let err = convert(&src, &out, true).unwrap_err();
    assert!(err.contains(&out.display().to_string()), "{err}");
    assert!(err.contains("it holds thesis.tex"), "{err}");
    assert_eq!(
        fs::read_to_string(out.join("thesis.tex")).unwrap(),
        "years of work"
    );
    fs::remove_dir_all(&out).unwrap();

    // A conversion's own output is replaced; with a stray folder it is not.
    convert(&src, &out, false).unwrap();
    let err = convert(&src, &out, false).unwrap_err();
    assert!(err.contains("pass --force"), "{err}");
    convert(&src, &out, true).unwrap();
    assert!(out.join("weights.safetensors").is_file());
    fs::create_dir(out.join("checkpoints")).unwrap();
    let err = convert(&src, &out, true).unwrap_err();
    assert!(err.contains("it holds checkpoints"), "{err}");
    assert_eq!(entries(dir.path()), 2, "no staging folders left behind");

    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let err = convert(&src, &file, true).unwrap_err();
    assert!(err.contains("it is not a folder"), "{err}");
}
