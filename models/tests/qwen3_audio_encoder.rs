//! Qwen3-ASR's audio side against transformers 5.23 (fixtures from
//! scripts/make_qwen3_audio_fixtures.py): the feature extractor on jfk.wav,
//! and a tiny random audio encoder + projector on those features.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_models::qwen3_asr::audio_config::AudioConfig;
use asr_models::qwen3_asr::audio_encoder::AudioEncoder;
use asr_models::qwen3_asr::features::AudioFeatures;
use asr_models::weights::Weights;
use common::npz_values;
use mlx::Array;

const FIXTURE: &str = "qwen3-asr-audio.npz";
/// Reference mel frames kept at each end of the long clip.
const LONG_MEL_EDGE: usize = 150;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_asr_audio")
}

fn config() -> AudioConfig {
    let text = std::fs::read_to_string(fixture_dir().join("config.json")).unwrap();
    let full: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(full["audio_config"].clone()).unwrap()
}

fn encoder() -> AudioEncoder {
    let weights = Weights::load(&fixture_dir().join("model.safetensors"), None).unwrap();
    AudioEncoder::load(&weights, "model", &config()).unwrap()
}

/// The samples of `clip` ("long" or "short") as the fixture cut them.
fn clip_samples<'a>(audio: &'a [f32], clip: &str) -> &'a [f32] {
    let span = npz_values(FIXTURE, &format!("{clip}_samples"));
    let (start, len) = (span[0] as usize, span[1] as usize);
    &audio[start..start + len]
}

fn max_abs_diff(ours: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    ours.iter()
        .zip(reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

fn mel_array(values: &[f64], bands: usize) -> Array {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Array::from_slice(&v, &[(v.len() / bands) as i32, bands as i32]).unwrap()
}

#[test]
fn config_reads_hugging_face_audio_config() {
    let c = config();
    assert_eq!((c.num_mel_bins, c.d_model, c.encoder_layers), (128, 32, 2));
    assert_eq!((c.n_window, c.n_window_infer, c.output_dim), (50, 200, 48));
    assert_eq!(c.attention_window(), 26);
    assert!(c.validate().is_ok());
}

/// The extractor is Whisper's log-mel with 128 bands on the clip as it is
/// (no 30 s padding; "tiny", 0.3 s, lengthened to 0.5 s): compared frame for
/// frame, and frame counts, including the extractor's padding to whole
/// 100-frame chunks.
#[test]
fn features_match_transformers_extractor() {
    let Some(audio) = common::jfk() else { return };
    let bands = config().num_mel_bins;
    let features = AudioFeatures::new(bands).unwrap();
    for clip in ["short", "long", "tiny"] {
        let samples = clip_samples(&audio, clip);
        let ours = features.forward(samples).unwrap();
        let frames = AudioFeatures::num_frames(samples.len());
        assert_eq!(ours.shape(), vec![frames as i32, bands as i32], "{clip}");
        let padded = npz_values(FIXTURE, &format!("{clip}_padded"))[0] as usize;
        let chunk = config().chunk_frames();
        assert_eq!(padded, frames.div_ceil(chunk) * chunk, "{clip}");
        let ours = ours.to_vec::<f32>().unwrap();
        let reference = npz_values(FIXTURE, &format!("{clip}_mel"));
        let compared: Vec<f32> = if clip == "long" {
            let edge = LONG_MEL_EDGE * bands;
            [&ours[..edge], &ours[ours.len() - edge..]].concat()
        } else {
            ours
        };
        let err = max_abs_diff(&compared, &reference);
        eprintln!("{clip}: features max abs error {err:.2e}");
        assert!(err < 5e-5, "{clip}: features max abs error {err}");
    }
}

/// Encoder states and projected embeddings on the reference's own features:
/// "short" has two chunks, the second partial (18 frames, one attention
/// window); "tiny" one partial chunk (7 frames).
#[test]
fn encoder_matches_transformers_on_reference_features() {
    let encoder = encoder();
    let (bands, dims, out_dims) = (encoder.config.num_mel_bins, 32, 48);
    for (clip, expected_frames) in [("short", 18), ("tiny", 7)] {
        let mel = mel_array(&npz_values(FIXTURE, &format!("{clip}_mel")), bands);
        let frames = encoder.output_frames(mel.dim(0).unwrap() as usize);
        assert_eq!(frames, expected_frames, "{clip}");
        let hidden = encoder.encode(&mel).unwrap();
        let embeds = encoder.forward(&mel).unwrap();
        assert_eq!(hidden.shape(), vec![frames as i32, dims], "{clip}");
        assert_eq!(embeds.shape(), vec![frames as i32, out_dims], "{clip}");
        let reference_hidden = npz_values(FIXTURE, &format!("{clip}_hidden"));
        let reference_embeds = npz_values(FIXTURE, &format!("{clip}_embeds"));
        let err_h = max_abs_diff(&hidden.to_vec::<f32>().unwrap(), &reference_hidden);
        let err_e = max_abs_diff(&embeds.to_vec::<f32>().unwrap(), &reference_embeds);
        eprintln!("{clip}: hidden max abs error {err_h:.2e}, embeds {err_e:.2e}");
        assert!(
            err_h < 1e-5 && err_e < 1e-5,
            "{clip}: hidden {err_h}, embeds {err_e}"
        );
    }
}

/// Audio to embeddings on all of jfk.wav: 11 whole chunks, 143 frames in
/// five full 26-frame attention windows and a 13-frame remainder.
#[test]
fn audio_to_embeddings_matches_transformers_on_jfk() {
    let Some(audio) = common::jfk() else { return };
    let encoder = encoder();
    let samples = clip_samples(&audio, "long");
    let mel = AudioFeatures::new(encoder.config.num_mel_bins)
        .unwrap()
        .forward(samples)
        .unwrap();
    let embeds = encoder.forward(&mel).unwrap();
    let reference = npz_values(FIXTURE, "long_embeds");
    let out = encoder.output_frames(AudioFeatures::num_frames(samples.len()));
    assert_eq!(out, 143);
    assert_eq!(embeds.shape(), vec![out as i32, 48]);
    let err = max_abs_diff(&embeds.to_vec::<f32>().unwrap(), &reference);
    eprintln!("long: embeds max abs error {err:.2e}");
    assert!(err < 1e-5, "long: embeds max abs error {err}");
}

#[test]
fn encoder_rejects_mel_with_the_wrong_band_count() {
    let encoder = encoder();
    let mel = Array::zeros(&[100, 80], mlx::Dtype::F32).unwrap();
    assert!(encoder.forward(&mel).is_err());
}

/// A weight and its bias, random, scaled small.
fn random_param(arrays: &mut BTreeMap<String, Array>, name: &str, weight: &[i32], bias: bool) {
    let seed = arrays.len() as u64;
    let random = |shape: &[i32], seed| {
        mlx::random::normal(shape, mlx::Dtype::F32, seed)
            .unwrap()
            .mul_scalar(0.02)
            .unwrap()
    };
    arrays.insert(format!("{name}.weight"), random(weight, seed));
    if bias {
        arrays.insert(format!("{name}.bias"), random(&weight[..1], seed + 1));
    }
}

/// Speed at Qwen3-ASR's default audio dimensions (random weights), features
/// included, on jfk.wav:
/// `cargo test -p asr-models --test qwen3_audio_encoder -- --ignored --nocapture`.
#[test]
#[ignore = "speed measurement, about 1.3 GB of random weights"]
fn default_dimensions_speed_on_jfk() {
    let Some(audio) = common::jfk() else { return };
    let c = AudioConfig::default();
    let (d, ffn) = (c.d_model as i32, c.encoder_ffn_dim as i32);
    let ch = c.downsample_hidden_size as i32;
    let mut arrays = BTreeMap::new();
    let tower = "model.audio_tower";
    for (i, input) in [1, ch, ch].into_iter().enumerate() {
        let name = format!("{tower}.conv2d{}", i + 1);
        random_param(&mut arrays, &name, &[ch, input, 3, 3], true);
    }
    let bands = c.num_mel_bins.div_ceil(8) as i32;
    random_param(
        &mut arrays,
        &format!("{tower}.conv_out"),
        &[d, ch * bands],
        false,
    );
    for l in 0..c.encoder_layers {
        let p = format!("{tower}.layers.{l}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            random_param(&mut arrays, &format!("{p}.self_attn.{proj}"), &[d, d], true);
        }
        random_param(&mut arrays, &format!("{p}.fc1"), &[ffn, d], true);
        random_param(&mut arrays, &format!("{p}.fc2"), &[d, ffn], true);
        for norm in ["self_attn_layer_norm", "final_layer_norm"] {
            random_param(&mut arrays, &format!("{p}.{norm}"), &[d], true);
        }
    }
    random_param(&mut arrays, &format!("{tower}.ln_post"), &[d], true);
    let projector = "model.multi_modal_projector";
    random_param(&mut arrays, &format!("{projector}.linear_1"), &[d, d], true);
    let out = c.output_dim as i32;
    random_param(
        &mut arrays,
        &format!("{projector}.linear_2"),
        &[out, d],
        true,
    );
    // Materialized before timing: MLX generates them lazily.
    mlx::eval(&arrays.values().collect::<Vec<_>>()).unwrap();
    let encoder = AudioEncoder::load(&Weights::new(arrays, None), "model", &c).unwrap();
    let features = AudioFeatures::new(c.num_mel_bins).unwrap();
    for run in 0..3 {
        let start = std::time::Instant::now();
        let embeds = encoder.forward(&features.forward(&audio).unwrap()).unwrap();
        embeds.eval().unwrap();
        eprintln!(
            "run {run}: {:?} embeddings of 11 s in {:.0} ms",
            embeds.shape(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
