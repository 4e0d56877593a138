//! Parakeet's FastConformer encoder against parakeet-mlx 0.6.0's on a tiny
//! random model (fixtures from scripts/make_parakeet_encoder_fixtures.py,
//! MLX CPU float32 both sides): the subsampling's output and the encoder's,
//! at two input lengths that are not multiples of the subsampling factor,
//! with full attention and with local attention (±5 frames; the reference's
//! two Metal kernels replaced by plain MLX ops on the CPU, see the script).

mod common;

use std::path::{Path, PathBuf};

use asr_models::model_config::ModelConfig;
use asr_models::nn::Matrix;
use asr_models::parakeet::encoder::AttentionSpan;
use asr_models::parakeet::{Encoder, ParakeetConfig};
use asr_models::weights::Weights;
use asr_models::Quantization;
use mlx::Array;

const NPZ: &str = "parakeet-encoder-tiny.npz";
/// Largest absolute difference allowed from parakeet-mlx's outputs (values
/// are of order 1 after each layer's final layer norm).
const TOLERANCE: f64 = 1e-5;

fn encoder() -> (ParakeetConfig, Encoder) {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parakeet_encoder_tiny"))
}

fn load(dir: &Path) -> (ParakeetConfig, Encoder) {
    let config = ParakeetConfig::load(&dir.join("config.json")).unwrap();
    let weights = Weights::load(&dir.join("weights.safetensors"), config.quantization).unwrap();
    let encoder = Encoder::load(&weights, "encoder", &config.encoder).unwrap();
    (config, encoder)
}

fn npz_array(name: &str, shape: &[i32]) -> Array {
    let values: Vec<f32> = common::npz_values(NPZ, name)
        .iter()
        .map(|&v| v as f32)
        .collect();
    Array::from_slice(&values, shape).unwrap()
}

/// Largest absolute difference of `ours` from the reference array `name`,
/// after checking the shapes agree.
fn max_error(ours: &Array, name: &str, shape: &[i32]) -> f64 {
    assert_eq!(ours.shape(), shape, "{name}");
    let reference = common::npz_values(NPZ, name);
    let ours = ours.to_vec::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len(), "{name}");
    ours.iter()
        .zip(&reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn matches_parakeet_mlx() {
    let (config, encoder) = encoder();
    let (feat, d) = (config.encoder.feat_in, config.encoder.d_model);
    for (input, output, batch, frames) in [
        ("features", "encoded", 2, 251),
        ("features_short", "encoded_short", 1, 100),
    ] {
        let features = npz_array(input, &[batch, frames, feat]);
        let out_frames = encoder.output_frames(frames as usize) as i32;
        let encoded = encoder.forward(&features).unwrap();
        let err = max_error(&encoded, output, &[batch, out_frames, d]);
        eprintln!("{output}: max abs error {err:.2e}");
        assert!(err < TOLERANCE, "{output}: max abs error {err}");
    }
}

#[test]
fn local_attention_matches_parakeet_mlx() {
    let (config, mut encoder) = encoder();
    let (feat, d) = (config.encoder.feat_in, config.encoder.d_model);
    encoder.span = AttentionSpan::Local { left: 5, right: 5 };
    let features = npz_array("features", &[2, 251, feat]);
    let encoded = encoder.forward(&features).unwrap();
    let err = max_error(&encoded, "encoded_local", &[2, 32, d]);
    eprintln!("encoded_local: max abs error {err:.2e}");
    assert!(err < TOLERANCE, "encoded_local: max abs error {err}");
}

#[test]
fn local_attention_wider_than_the_input_is_full_attention() {
    let (config, mut encoder) = encoder();
    let features = npz_array("features_short", &[1, 100, config.encoder.feat_in]);
    let full = encoder.forward(&features).unwrap();
    encoder.span = AttentionSpan::Local {
        left: 20,
        right: 13,
    };
    let wide = encoder.forward(&features).unwrap();
    let diff = full
        .subtract(&wide)
        .unwrap()
        .abs()
        .unwrap()
        .flatten(0, -1)
        .unwrap()
        .max(&[0], false)
        .unwrap();
    let diff = diff.item::<f32>().unwrap();
    assert!(
        diff < 1e-5,
        "local attention over every frame differs by {diff}"
    );
}

#[test]
fn subsampling_matches_parakeet_mlx() {
    let (config, encoder) = encoder();
    let features = npz_array("features", &[2, 251, config.encoder.feat_in]);
    let subsampled = encoder.pre_encode.forward(&features).unwrap();
    let err = max_error(&subsampled, "subsampled", &[2, 32, config.encoder.d_model]);
    eprintln!("subsampled: max abs error {err:.2e}");
    assert!(err < TOLERANCE, "subsampled: max abs error {err}");
}

#[test]
fn output_frames_follow_the_three_halvings() {
    let (_, encoder) = encoder();
    // ⌊(t - 1) / 2⌋ + 1 three times.
    for (input, output) in [
        (0, 0),
        (1, 1),
        (8, 1),
        (9, 2),
        (100, 13),
        (251, 32),
        (1000, 125),
    ] {
        assert_eq!(encoder.output_frames(input), output, "{input} frames");
    }
}

#[test]
fn a_missing_weight_is_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parakeet_encoder_tiny");
    let config = ParakeetConfig::load(&dir.join("config.json")).unwrap();
    let weights = Weights::load(&dir.join("weights.safetensors"), None).unwrap();
    let err = Encoder::load(&weights, "model.encoder", &config.encoder).unwrap_err();
    assert!(err.to_string().contains("model.encoder.layers.0"), "{err}");
}

#[test]
fn the_config_names_what_the_encoder_cannot_run() {
    let (mut config, _) = encoder();
    config.encoder.self_attention_model = "rel_pos_local_attn".into();
    for context in [None, Some(vec![-1, -1]), Some(vec![64]), Some(vec![0, 8])] {
        config.encoder.att_context_size = context.clone();
        let err = config.validate().unwrap_err();
        assert!(err.contains("att_context_size"), "{context:?}: {err}");
    }
    config.encoder.att_context_size = Some(vec![128, 64]);
    config.validate().unwrap();
    assert_eq!(
        config.encoder.attention_span(),
        AttentionSpan::Local {
            left: 128,
            right: 64
        }
    );
    config.encoder.self_attention_model = "rel_pos".into();
    assert_eq!(config.encoder.attention_span(), AttentionSpan::Full);
    config.encoder.causal_downsampling = true;
    let err = config.validate().unwrap_err();
    assert!(err.contains("causal_downsampling"), "{err}");
}

/// parakeet-tdt-0.6b-v2's encoder dimensions (random weights, 10 s of
/// frames): the fixture is 2.4 GB, so it is made on demand
/// (`make_parakeet_encoder_fixtures.py --real DIR`) and named by
/// `PARAKEET_ENCODER_REAL_FIXTURE=DIR`. Prints the forward pass's time.
#[test]
#[ignore]
fn real_dimensions_one_window() {
    let Some(dir) = std::env::var_os("PARAKEET_ENCODER_REAL_FIXTURE").map(PathBuf::from) else {
        eprintln!("skipped: PARAKEET_ENCODER_REAL_FIXTURE is not set");
        return;
    };
    let (_, encoder) = load(&dir);
    let reference = dir.join("reference.npz");
    let (features, shape) = common::npz_at(&reference, "features");
    let features = Array::from_slice(&features, &shape).unwrap();
    let (expected, expected_shape) = common::npz_at(&reference, "encoded");
    let mut encoded = encoder.forward(&features).unwrap();
    let seconds = f64::from(shape[1] - 1) / 100.0;
    for run in 0..3 {
        let start = std::time::Instant::now();
        encoded = encoder.forward(&features).unwrap();
        encoded.eval().unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "run {run}: {ms:.0} ms for {seconds} s of frames ({:.1} ms per second)",
            ms / seconds
        );
    }
    let start = std::time::Instant::now();
    encoder
        .pre_encode
        .forward(&features)
        .unwrap()
        .eval()
        .unwrap();
    eprintln!(
        "of which the subsampling: {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(encoded.shape(), expected_shape);
    let ours = encoded.to_vec::<f32>().unwrap();
    let diff = ours
        .iter()
        .zip(&expected)
        .map(|(&a, &b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("real dimensions: encoded max |diff| {diff:.2e}");
    assert!(diff < 1e-3, "encoded differs by {diff}");
}

/// mlx-community publishes Parakeet in bfloat16: the encoder runs on such
/// weights from f32 features and stays near the f32 reference.
#[test]
fn runs_on_bfloat16_weights() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parakeet_encoder_tiny");
    let config = ParakeetConfig::load(&dir.join("config.json")).unwrap();
    let f32_weights = Weights::load(&dir.join("weights.safetensors"), None).unwrap();
    let bf16 = f32_weights
        .arrays()
        .map(|(name, a)| (name.clone(), a.astype(mlx::Dtype::BF16).unwrap()))
        .collect();
    let encoder = Encoder::load(&Weights::new(bf16, None), "encoder", &config.encoder).unwrap();
    let features = npz_array("features", &[2, 251, config.encoder.feat_in]);
    let encoded = encoder
        .forward(&features)
        .unwrap()
        .astype(mlx::Dtype::F32)
        .unwrap();
    let err = max_error(&encoded, "encoded", &[2, 32, config.encoder.d_model]);
    eprintln!("bfloat16 weights: max abs error {err:.2e}");
    assert!(err < 0.1, "bfloat16 weights: max abs error {err}");
}

/// Every linear layer 8-bit affine quantized (groups of 32), as a q8 folder
/// stores them: the encoder reads them as quantized and stays near the f32
/// reference.
#[test]
fn runs_on_8_bit_linear_layers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parakeet_encoder_tiny");
    let config = ParakeetConfig::load(&dir.join("config.json")).unwrap();
    let dense = Weights::load(&dir.join("weights.safetensors"), None).unwrap();
    let mut arrays = std::collections::BTreeMap::new();
    let mut quantized = 0;
    for (name, a) in dense.arrays() {
        match name.strip_suffix(".weight") {
            Some(layer) if a.ndim() == 2 => {
                let q = mlx::quant::QuantizedMatrix::quantize(a, 32, 8).unwrap();
                arrays.insert(name.clone(), q.weight);
                arrays.insert(format!("{layer}.scales"), q.scales);
                arrays.insert(format!("{layer}.biases"), q.biases);
                quantized += 1;
            }
            _ => {
                arrays.insert(name.clone(), a.clone());
            }
        }
    }
    // Per layer: q, k, v, out, pos, two per feed-forward; and the subsampling's.
    assert_eq!(quantized, 2 * 9 + 1);
    let q8 = Quantization {
        group_size: 32,
        bits: 8,
    };
    let encoder =
        Encoder::load(&Weights::new(arrays, Some(q8)), "encoder", &config.encoder).unwrap();
    assert!(matches!(
        encoder.layers[0].self_attn.linear_q.weight,
        Matrix::Quantized(_)
    ));
    let features = npz_array("features", &[2, 251, config.encoder.feat_in]);
    let encoded = encoder.forward(&features).unwrap();
    let err = max_error(&encoded, "encoded", &[2, 32, config.encoder.d_model]);
    eprintln!("8-bit linear layers: max abs error {err:.2e}");
    assert!(err < 0.1, "8-bit linear layers: max abs error {err}");
}
