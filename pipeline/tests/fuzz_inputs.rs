//! Property tests: what a user hands the pipeline — a run config, a
//! regression manifest, an audio file — mutated or arbitrary, gives a value
//! or an error naming the file; nothing panics. Audio inputs start from real
//! files (WAV, MP3, FLAC, OGG) with a few bytes overwritten and sometimes cut
//! short, so that most of them get past the container's magic numbers.
//!
//! The normal test run tries 64 cases per property; `scripts/fuzz` runs
//! many more through `PROPTEST_CASES`.

use std::path::{Path, PathBuf};

use asr_pipeline::regress::Manifest;
use asr_pipeline::stages::audio::load_audio;
use asr_pipeline::Config;
use proptest::prelude::*;
use proptest::test_runner::Config as Cases;

fn cases(default: u32) -> Cases {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    Cases {
        cases,
        failure_persistence: None,
        ..Cases::default()
    }
}

/// Small real files of every container the audio stage reads: the
/// project's own WAV, and the shared clips when `../shared/data` is there.
fn audio_seeds() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seeds = Vec::new();
    let mut add = |path: PathBuf, keep: usize| {
        if let Ok(bytes) = std::fs::read(&path) {
            let ext = path.extension().unwrap().to_string_lossy().into_owned();
            seeds.push((ext, bytes[..bytes.len().min(keep)].to_vec()));
        }
    };
    add(root.join("examples/audio/jfk.wav"), 48_044);
    add(root.join("../shared/data/audio/hotwords.mp3"), 40_000);
    let libri = root.join("../shared/data/librispeech/LibriSpeech/test-clean");
    if let Some(flac) = walk_first(&libri, "flac") {
        add(flac, 60_000);
    }
    seeds
}

fn walk_first(dir: &Path, ext: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = walk_first(&path, ext) {
                return Some(found);
            }
        } else if path.extension().is_some_and(|e| e == ext) {
            return Some(path);
        }
    }
    None
}

/// `bytes` with `edits` (position fraction, value) written over it, cut to
/// `keep` of its length.
fn mutate(bytes: &[u8], edits: &[(f64, u8)], keep: f64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, value) in edits {
        let i = ((out.len() as f64 * at) as usize).min(out.len().saturating_sub(1));
        if let Some(b) = out.get_mut(i) {
            *b = value;
        }
    }
    out.truncate(((out.len() as f64) * keep).ceil() as usize);
    out
}

const VALID_CONFIG: &str = r#"
input = "audio/jfk.wav"
model = "tiny.en"
quantize = "q8"
formats = ["txt", "json"]
[decode]
beam_size = 5
temperature = [0.0, 0.2]
[vad]
min_silence_ms = 500
"#;

const VALID_MANIFEST: &str = r#"
model = "tiny.en"
snapshots = "snaps"
[[audio]]
id = "jfk"
path = "audio/jfk.wav"
reference = "And so my fellow Americans"
"#;

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn mutated_audio_files_decode_or_fail_naming_the_file(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..8),
        keep in 0.05f64..1.0,
    ) {
        let seeds = audio_seeds();
        let (ext, bytes) = &seeds[seed.index(seeds.len())];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("fuzzed.{ext}"));
        std::fs::write(&path, mutate(bytes, &edits, keep)).unwrap();
        if let Err(e) = load_audio(&path) {
            prop_assert!(e.to_string().contains("fuzzed."), "{e}");
        }
    }

    #[test]
    fn mutated_run_configs_parse_or_fail(
        edits in prop::collection::vec((0.0f64..1.0, 0x20u8..0x7f), 0..6),
        keep in 0.0f64..1.0,
    ) {
        let text = String::from_utf8(mutate(VALID_CONFIG.as_bytes(), &edits, keep)).unwrap();
        if let Ok(config) = Config::from_toml(&text, Path::new("/nonexistent")) {
            let _ = config.problems();
        }
    }

    #[test]
    fn arbitrary_text_is_no_run_config_or_manifest_crash(text in "\\PC{0,200}") {
        let _ = Config::from_toml(&text, Path::new("/nonexistent"));
        let _ = Manifest::from_toml(&text, Path::new("/nonexistent"), "fuzz.toml");
    }

    #[test]
    fn mutated_manifests_parse_or_fail(
        edits in prop::collection::vec((0.0f64..1.0, 0x20u8..0x7f), 0..6),
        keep in 0.0f64..1.0,
    ) {
        let text = String::from_utf8(mutate(VALID_MANIFEST.as_bytes(), &edits, keep)).unwrap();
        let _ = Manifest::from_toml(&text, Path::new("/nonexistent"), "fuzz.toml");
    }
}
