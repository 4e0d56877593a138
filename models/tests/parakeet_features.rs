//! Parakeet's log-mel front end against parakeet-mlx 0.6.0's `get_logmel`
//! on the same audio (fixture from scripts/make_parakeet_fixtures.py).

mod common;

use asr_models::parakeet::{FeatureWindow, Normalization, ParakeetFeatures, PreprocessConfig};
use common::npz_values;

const FIXTURE: &str = "parakeet-features.npz";

/// Largest absolute difference of our features for `clip` from the
/// reference array `name`, after checking the shapes agree.
fn max_error(audio: &[f32], config: PreprocessConfig, clip: usize, name: &str) -> f64 {
    let clips = npz_values(FIXTURE, "clips");
    let (start, len) = (clips[2 * clip] as usize, clips[2 * clip + 1] as usize);
    let reference = npz_values(FIXTURE, name);
    let features = config.features;
    let front = ParakeetFeatures::new(config).unwrap();
    let ours = front.forward(&audio[start..start + len]).unwrap();
    let frames = reference.len() / features;
    assert_eq!(ours.shape(), vec![frames as i32, features as i32], "{name}");
    assert_eq!(front.num_frames(len), frames);
    let ours = ours.to_vec::<f32>().unwrap();
    ours.iter()
        .zip(&reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn matches_parakeet_mlx_on_jfk() {
    let Some(audio) = common::jfk() else { return };
    for (features, clip) in [(128, 0), (128, 1), (80, 0)] {
        let name = format!("mel{features}_{clip}");
        let err = max_error(
            &audio,
            PreprocessConfig::fastconformer(features),
            clip,
            &name,
        );
        eprintln!("{name}: max abs error {err:.2e}");
        assert!(err < 1e-4, "{name}: max abs error {err}");
    }
}

#[test]
fn other_window_normalization_power_and_no_preemphasis_match_too() {
    let Some(audio) = common::jfk() else { return };
    let config = PreprocessConfig {
        window: FeatureWindow::Hamming,
        normalize: Normalization::AllFeatures,
        mag_power: 1.0,
        preemph: None,
        ..PreprocessConfig::fastconformer(80)
    };
    let err = max_error(&audio, config, 0, "other80_0");
    eprintln!("other80_0: max abs error {err:.2e}");
    assert!(err < 1e-4, "other80_0: max abs error {err}");
}

#[test]
fn config_reads_parakeet_mlx_preprocessor_json() {
    let json = r#"{"sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025,
        "window_stride": 0.01, "window": "hann", "features": 128, "n_fft": 512,
        "dither": 1e-05, "pad_to": 0, "pad_value": 0.0}"#;
    let config: PreprocessConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config, PreprocessConfig::fastconformer(128));
    assert_eq!((config.win_length(), config.hop_length()), (400, 160));
}

#[test]
fn too_short_input_is_an_error() {
    let front = ParakeetFeatures::new(PreprocessConfig::fastconformer(80)).unwrap();
    assert!(front.forward(&[0.1; 256]).is_err());
    assert!(front.forward(&[0.1; 257]).is_ok());
}
