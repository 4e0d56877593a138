//! wav2vec2 CTC on MLX against Hugging Face transformers' `Wav2Vec2ForCTC`
//! on tiny random models (fixtures from scripts/make_wav2vec2_fixtures.py,
//! PyTorch fp32 on CPU): the feature extractor's normalization and the
//! logits, for the base layout (group norm, post-LN) and the large layout
//! (layer norm, pre-LN); and the converter's refusals.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_converters::wav2vec2::convert_wav2vec2;
use asr_models::wav2vec2::{normalize_waveform, Wav2Vec2};
use mlx::Array;

const NPZ: &str = "wav2vec2-tiny.npz";
const BATCH: i32 = 2;
const SAMPLES: i32 = 16000;
/// Logits' largest absolute difference from transformers' (f32 both sides).
const LOGITS_TOLERANCE: f64 = 1e-4;

fn fixture_folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn npz_array(name: &str, shape: &[i32]) -> Array {
    let values: Vec<f32> = common::npz_values(NPZ, name)
        .iter()
        .map(|&v| v as f32)
        .collect();
    Array::from_slice(&values, shape).unwrap()
}

fn max_abs_diff(ours: &Array, reference: &[f64]) -> f64 {
    let ours = ours.to_vec::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len());
    ours.iter()
        .zip(reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

fn converted(folder: &str) -> (tempfile::TempDir, Wav2Vec2) {
    let out = tempfile::tempdir().unwrap();
    convert_wav2vec2(&fixture_folder(folder), out.path()).unwrap();
    let model = Wav2Vec2::load(out.path()).unwrap();
    (out, model)
}

#[test]
fn normalization_matches_the_feature_extractor() {
    let samples = npz_array("samples", &[BATCH, SAMPLES]);
    let ours = normalize_waveform(&samples).unwrap();
    let diff = max_abs_diff(&ours, &common::npz_values(NPZ, "normalized"));
    assert!(diff < 1e-5, "normalized samples differ by {diff}");
}

fn check_logits(folder: &str, key: &str) {
    let (_dir, model) = converted(folder);
    let samples = npz_array("samples", &[BATCH, SAMPLES]);
    let logits = model
        .forward(&normalize_waveform(&samples).unwrap())
        .unwrap();
    let frames = (SAMPLES - 400) / model.config.samples_per_frame() + 1;
    assert_eq!(logits.shape(), vec![BATCH, frames, model.config.vocab_size]);
    let reference = common::npz_values(NPZ, key);
    let diff = max_abs_diff(&logits, &reference);
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!("{folder}: logits max |diff| {diff:.2e} (max |logit| {scale:.2})");
    assert!(diff < LOGITS_TOLERANCE, "{folder}: logits differ by {diff}");
}

#[test]
fn base_layout_logits_match_transformers() {
    check_logits("wav2vec2-tiny", "logits_group");
}

#[test]
fn stable_layer_norm_layout_logits_match_transformers() {
    check_logits("wav2vec2-tiny-stable", "logits_stable");
}

/// A copy of the base fixture's Hugging Face folder in `dir`, its tensors
/// changed by `edit`.
fn edited_copy(dir: &Path, edit: impl FnOnce(&mut BTreeMap<String, Array>)) {
    let source = fixture_folder("wav2vec2-tiny");
    std::fs::copy(source.join("config.json"), dir.join("config.json")).unwrap();
    let mut file = mlx::io::load_safetensors(source.join("model.safetensors")).unwrap();
    edit(&mut file.tensors);
    file.save(dir.join("model.safetensors")).unwrap();
}

/// The positional convolution under PyTorch's older weight-norm names
/// (`weight_g`, `weight_v`).
fn with_legacy_weight_norm_names(tensors: &mut BTreeMap<String, Array>) {
    let prefix = "wav2vec2.encoder.pos_conv_embed.conv";
    for (new, old) in [("original0", "weight_g"), ("original1", "weight_v")] {
        let array = tensors
            .remove(&format!("{prefix}.parametrizations.weight.{new}"))
            .unwrap();
        tensors.insert(format!("{prefix}.{old}"), array);
    }
}

#[test]
fn legacy_weight_norm_names_give_the_same_logits() {
    let legacy = tempfile::tempdir().unwrap();
    edited_copy(legacy.path(), with_legacy_weight_norm_names);
    let out = tempfile::tempdir().unwrap();
    convert_wav2vec2(legacy.path(), out.path()).unwrap();
    let model = Wav2Vec2::load(out.path()).unwrap();
    let samples = normalize_waveform(&npz_array("samples", &[BATCH, SAMPLES])).unwrap();
    let logits = model.forward(&samples).unwrap();
    let diff = max_abs_diff(&logits, &common::npz_values(NPZ, "logits_group"));
    assert!(diff < LOGITS_TOLERANCE, "logits differ by {diff}");
}

#[test]
fn a_folder_without_a_checkpoint_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_folder("wav2vec2-tiny").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = convert_wav2vec2(dir.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no model.safetensors or pytorch_model.bin"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_without_a_ctc_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    edited_copy(dir.path(), |tensors| {
        tensors.retain(|name, _| !name.starts_with("lm_head."));
    });
    let out = tempfile::tempdir().unwrap();
    let err = convert_wav2vec2(dir.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a Wav2Vec2ForCTC checkpoint"), "{err}");
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn a_folder_without_a_config_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = convert_wav2vec2(dir.path(), out.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn a_converted_folder_missing_a_layer_is_refused_by_name() {
    let (dir, _) = converted("wav2vec2-tiny");
    let weights = dir.path().join("weights.safetensors");
    let mut file = mlx::io::load_safetensors(&weights).unwrap();
    file.tensors
        .remove("encoder.layers.1.attention.k_proj.weight")
        .unwrap();
    // The loaded tensors are read lazily from `weights`: write beside it.
    let edited = dir.path().join("edited.safetensors");
    file.save(&edited).unwrap();
    std::fs::rename(&edited, &weights).unwrap();
    let err = Wav2Vec2::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("encoder.layers.1.attention.k_proj.weight"),
        "{err}"
    );
    assert!(err.contains("weights.safetensors"), "{err}");
}

/// wav2vec2-base's dimensions (random weights, 10 s of jfk.wav): the
/// fixture is 380 MB, so it is made on demand
/// (`make_wav2vec2_fixtures.py --base DIR`) and named by
/// `WAV2VEC2_BASE_FIXTURE=DIR`. Prints the forward pass's time.
#[test]
#[ignore]
fn base_dimensions_one_window() {
    let Some(dir) = std::env::var_os("WAV2VEC2_BASE_FIXTURE").map(PathBuf::from) else {
        eprintln!("skipped: WAV2VEC2_BASE_FIXTURE is not set");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    convert_wav2vec2(&dir.join("hf"), out.path()).unwrap();
    let model = Wav2Vec2::load(out.path()).unwrap();
    let reference = dir.join("reference.npz");
    let (samples, shape) = common::npz_at(&reference, "normalized");
    let samples = Array::from_slice(&samples, &shape).unwrap();
    let (expected, expected_shape) = common::npz_at(&reference, "logits");
    let mut logits = model.forward(&samples).unwrap();
    for run in 0..3 {
        let start = std::time::Instant::now();
        logits = model.forward(&samples).unwrap();
        logits.eval().unwrap();
        let seconds = f64::from(shape[1]) / 16000.0;
        eprintln!(
            "run {run}: {:.1} ms for {seconds} s of audio ({:.1} ms per second)",
            start.elapsed().as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() * 1e3 / seconds
        );
    }
    assert_eq!(logits.shape(), expected_shape);
    let expected: Vec<f64> = expected.iter().map(|&v| f64::from(v)).collect();
    let diff = max_abs_diff(&logits, &expected);
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!("base: logits max |diff| {diff:.2e} (max |logit| {scale:.2})");
    assert!(diff < 1e-3, "logits differ by {diff}");
}
