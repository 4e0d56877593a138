//! A run's inputs and output directory, checked before anything is
//! transcribed: missing, odd or empty inputs, files whose outputs would
//! overwrite each other, files listed twice, an output directory that
//! cannot be written.

use std::path::{Path, PathBuf};

use asr_pipeline::Config;

fn config(inputs: &[&Path], output_dir: Option<&Path>) -> Config {
    let quoted = |p: &Path| format!("{:?}", p.to_str().unwrap());
    let list: Vec<String> = inputs.iter().map(|p| quoted(p)).collect();
    let mut toml = format!("input = [{}]\n", list.join(", "));
    if let Some(dir) = output_dir {
        toml += &format!("output_dir = {}\n", quoted(dir));
    }
    Config::from_toml(&toml, Path::new(".")).unwrap()
}

fn touch(path: &Path) -> PathBuf {
    std::fs::write(path, b"audio").unwrap();
    path.to_path_buf()
}

#[test]
fn files_with_the_same_stem_are_refused_when_outputs_are_written() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let flac = touch(&dir.path().join("a/jfk.flac"));
    let mp3 = touch(&dir.path().join("b/jfk.mp3"));
    let out = dir.path().join("out");
    let problems = config(&[&flac, &mp3], Some(&out)).problems();
    assert_eq!(
        problems,
        [format!(
            "input: {}, {} would write the same outputs {}.* (each overwriting the other): rename one or run them apart",
            flac.display(),
            mp3.display(),
            out.join("jfk").display()
        )]
    );
    // Nothing written, nothing overwritten.
    assert!(config(&[&flac, &mp3], None).problems().is_empty());
}

#[test]
fn a_file_listed_twice_is_transcribed_once() {
    let dir = tempfile::tempdir().unwrap();
    let wav = touch(&dir.path().join("jfk.wav"));
    let other = touch(&dir.path().join("other.wav"));
    let again = dir.path().join(".").join("jfk.wav");
    let config = config(&[&wav, dir.path(), &again], Some(&dir.path().join("out")));
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    assert_eq!(config.input_files().unwrap(), [wav, other]);
}

#[test]
fn an_empty_directory_or_a_device_is_not_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("x.wav");
    std::fs::create_dir(&empty).unwrap();
    touch(&empty.join("notes.txt"));
    let zero = Path::new("/dev/zero");
    let mut inputs = vec![empty.as_path()];
    if zero.exists() {
        inputs.push(zero);
    }
    let problems = config(&inputs, None).problems();
    let mut expected = vec![format!(
        "input: {} is a directory with no audio files",
        empty.display()
    )];
    if zero.exists() {
        expected.push("input: /dev/zero is not a regular file (a device, pipe or socket)".into());
    }
    assert_eq!(problems, expected);
}

#[test]
fn a_fifo_is_not_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.wav");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    assert_eq!(
        config(&[&fifo], None).problems(),
        [format!(
            "input: {} is not a regular file (a device, pipe or socket)",
            fifo.display()
        )]
    );
}

#[test]
fn an_output_dir_that_cannot_be_written_is_found_first() {
    let dir = tempfile::tempdir().unwrap();
    let wav = touch(&dir.path().join("jfk.wav"));
    // Under a regular file: not even root can create it.
    let blocked = wav.join("out");
    let problems = config(&[&wav], Some(&blocked)).problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!(
            "output_dir: cannot create {}: ",
            blocked.display()
        )),
        "{problems:?}"
    );
    // A writable one passes; checking creates nothing and leaves no probe.
    let fine = dir.path().join("new/out");
    assert!(config(&[&wav], Some(&fine)).problems().is_empty());
    assert!(!dir.path().join("new").exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
