//! `model = "org/name[@revision]"`: resolve_model_in finds the repo in a fake
//! Hugging Face cache (offline, in a tempdir: no environment variables
//! touched) holding the random tiny Whisper fixture of the converter tests,
//! converts it once into the project cache under a key made of repo and
//! commit, and says which repo and file are missing otherwise.

use std::path::{Path, PathBuf};

use asr_converters::hub::HubOptions;
use asr_models::whisper::Whisper;
use asr_models::Quantization;
use asr_pipeline::model_source::{resolve_model_in, ModelSources, PARAKEET, QWEN3_ASR, WHISPER};

const SHA_A: &str = "0123456789abcdef0123456789abcdef01234567";
const SHA_B: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn fixture(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../converters/tests/fixtures/tiny-whisper")
        .join(dir)
}

/// Snapshot `commit` of `repo` holding fixture folder `dir` (plus a stand-in
/// tokenizer.json unless `tokenizer` is false), laid out as huggingface_hub
/// does: blobs, snapshot symlinks, `refs/<name>`.
fn add_snapshot(cache: &Path, repo: &str, commit: &str, dir: &str, tokenizer: bool, refs: &[&str]) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if tokenizer {
        let stub = cache.join("tokenizer.json");
        std::fs::create_dir_all(cache).unwrap();
        std::fs::write(&stub, br#"{"stub": true}"#).unwrap();
        files.push(stub);
    }
    add_snapshot_files(cache, repo, commit, &files, refs);
}

/// Snapshot `commit` of `repo` holding `files`.
fn add_snapshot_files(cache: &Path, repo: &str, commit: &str, files: &[PathBuf], refs: &[&str]) {
    let repo_dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    let blobs = repo_dir.join("blobs");
    let snapshot = repo_dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    let link = |name: &str, bytes: &[u8]| {
        let etag = format!("{commit}-{name}");
        std::fs::write(blobs.join(&etag), bytes).unwrap();
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&etag), snapshot.join(name))
            .unwrap();
    };
    for file in files {
        link(
            &file.file_name().unwrap().to_string_lossy(),
            &std::fs::read(file).unwrap(),
        );
    }
    for name in refs {
        let path = repo_dir.join("refs").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, commit).unwrap();
    }
}

fn sources(root: &Path) -> ModelSources {
    ModelSources {
        cache: root.join("mlx-asr"),
        hub: HubOptions {
            cache: root.join("hub"),
            offline: true,
            endpoint: "http://127.0.0.1:9".into(),
            token: None,
            progress: false,
        },
    }
}

#[test]
fn a_hub_repo_in_the_local_cache_is_converted_once_per_commit() {
    let root = tempfile::tempdir().unwrap();
    let s = sources(root.path());
    add_snapshot(
        &s.hub.cache,
        "test-org/tiny-random",
        SHA_A,
        "hf-safetensors",
        true,
        &["main"],
    );
    add_snapshot(
        &s.hub.cache,
        "test-org/tiny-random",
        SHA_B,
        "ct2-float16",
        true,
        &["v2"],
    );

    let main = resolve_model_in("test-org/tiny-random", None, WHISPER, &s).unwrap();
    assert_eq!(
        main,
        s.cache
            .join("models/mlx-hf-test-org--tiny-random-0123456789ab-f32")
    );
    assert!(main.join("tokenizer.json").is_file());
    let model = Whisper::load(&main).unwrap();
    assert!(model.config.dims.n_vocab > 0);

    // Converted once: the second resolution reuses the folder.
    let stamp = std::fs::metadata(main.join("weights.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        resolve_model_in("hf:test-org/tiny-random@main", None, WHISPER, &s).unwrap(),
        main
    );
    assert_eq!(
        std::fs::metadata(main.join("weights.safetensors"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp
    );

    // Another revision is another commit, converted under its own key.
    let v2 = resolve_model_in("test-org/tiny-random@v2", None, WHISPER, &s).unwrap();
    assert_eq!(
        v2,
        s.cache
            .join("models/mlx-hf-test-org--tiny-random-89abcdef0123-f32")
    );
    Whisper::load(&v2).unwrap();
    assert_eq!(
        resolve_model_in(&format!("test-org/tiny-random@{SHA_B}"), None, WHISPER, &s).unwrap(),
        v2
    );
}

#[test]
fn missing_hub_files_are_named_with_the_repo_and_where_it_looked() {
    let root = tempfile::tempdir().unwrap();
    let s = sources(root.path());
    add_snapshot(
        &s.hub.cache,
        "test-org/no-tokenizer",
        SHA_A,
        "hf-bin",
        false,
        &["main"],
    );

    let err = resolve_model_in("test-org/no-tokenizer", None, WHISPER, &s)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Hugging Face repo test-org/no-tokenizer@main"),
        "{err}"
    );
    assert!(err.contains("missing tokenizer.json"), "{err}");
    assert!(err.contains(&s.hub.cache.display().to_string()), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains("no local path test-org/no-tokenizer"), "{err}");
    assert!(!s.cache.join("models").exists(), "nothing converted");

    let err = resolve_model_in("hf:test-org/absent", None, WHISPER, &s)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test-org/absent@main: not in the cache"),
        "{err}"
    );
    assert!(!err.contains("local path"), "{err}");

    let err = resolve_model_in("no-such-model", None, WHISPER, &s)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a local path, a registry model (tiny.en, base)"),
        "{err}"
    );
}

#[test]
fn parakeet_repos_of_a_nemo_file_or_an_mlx_community_folder_convert_alike() {
    let root = tempfile::tempdir().unwrap();
    let s = sources(root.path());
    let parakeet =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../converters/tests/fixtures/parakeet");
    add_snapshot_files(
        &s.hub.cache,
        "nvidia/parakeet-tiny",
        SHA_A,
        &[parakeet.join("tiny.nemo")],
        &["main"],
    );
    let community: Vec<PathBuf> = ["config.json", "model.safetensors"]
        .iter()
        .map(|f| parakeet.join("mlx-community").join(f))
        .collect();
    add_snapshot_files(
        &s.hub.cache,
        "mlx-community/parakeet-tiny",
        SHA_B,
        &community,
        &["main"],
    );

    let from_nemo = resolve_model_in("nvidia/parakeet-tiny", None, PARAKEET, &s).unwrap();
    let from_mlx = resolve_model_in("mlx-community/parakeet-tiny", None, PARAKEET, &s).unwrap();
    assert_ne!(from_nemo, from_mlx);
    let config = |dir: &Path| std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert_eq!(config(&from_nemo), config(&from_mlx));
    asr_models::parakeet::Parakeet::load(&from_nemo).unwrap();

    // A Parakeet repo with neither a .nemo nor config and weights.
    add_snapshot_files(
        &s.hub.cache,
        "test-org/empty",
        SHA_A,
        &[parakeet.join("mlx-community/config.json")],
        &["main"],
    );
    let err = resolve_model_in("test-org/empty", None, PARAKEET, &s)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("neither a .nemo file nor config.json and model.safetensors"),
        "{err}"
    );
}

#[test]
fn qwen3_asr_repos_of_either_layout_convert_alike_and_load() {
    let root = tempfile::tempdir().unwrap();
    let s = sources(root.path());
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../converters/tests/fixtures/qwen3_asr");
    let files = |dir: &str| -> Vec<PathBuf> {
        std::fs::read_dir(fixtures.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    // Qwen's own layout (two shards and an index), and transformers'.
    add_snapshot_files(
        &s.hub.cache,
        "Qwen/Qwen3-ASR-tiny",
        SHA_A,
        &files("thinker"),
        &["main"],
    );
    add_snapshot_files(
        &s.hub.cache,
        "Qwen/Qwen3-ASR-tiny-hf",
        SHA_B,
        &files("hf"),
        &["main"],
    );

    let original = resolve_model_in("Qwen/Qwen3-ASR-tiny", None, QWEN3_ASR, &s).unwrap();
    let hf = resolve_model_in("Qwen/Qwen3-ASR-tiny-hf", None, QWEN3_ASR, &s).unwrap();
    let weights = |dir: &Path| std::fs::read(dir.join("weights.safetensors")).unwrap();
    assert_eq!(weights(&original), weights(&hf));
    asr_models::qwen3_asr::Qwen3Asr::load(&original).unwrap();

    let q8 = Quantization {
        group_size: 32,
        bits: 8,
    };
    let quantized = resolve_model_in("Qwen/Qwen3-ASR-tiny", Some(q8), QWEN3_ASR, &s).unwrap();
    assert_ne!(quantized, original);
    let model = asr_models::qwen3_asr::Qwen3Asr::load(&quantized).unwrap();
    assert_eq!(model.config().quantization, Some(q8));
}
