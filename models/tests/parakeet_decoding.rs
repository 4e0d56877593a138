//! Parakeet's decoding heads (TDT, RNN-T, CTC) and tokenizer against
//! parakeet-mlx 0.6.0's greedy decodes of the same tiny random heads
//! (fixtures from scripts/make_parakeet_decoder_fixtures.py).

mod common;

use std::path::{Path, PathBuf};

use asr_models::parakeet::{CtcHead, DecodedToken, ParakeetConfig, ParakeetTokenizer, Transducer};
use asr_models::{ModelConfig, Weights};
use common::npz_values;
use mlx::Array;

/// Joint logits and CTC log-probabilities: the same float32 products in
/// another order.
const LOGIT_TOLERANCE: f64 = 1e-5;
/// Confidences, computed from those.
const CONFIDENCE_TOLERANCE: f64 = 1e-5;

struct Fixture {
    name: &'static str,
    config: ParakeetConfig,
    weights: Weights,
}

impl Fixture {
    fn open(name: &'static str) -> Fixture {
        let dir = folder(name);
        let config = ParakeetConfig::load(&dir.join("config.json")).unwrap();
        let weights = Weights::load(&dir.join("weights.safetensors"), config.quantization).unwrap();
        Fixture {
            name,
            config,
            weights,
        }
    }

    fn values(&self, array: &str) -> Vec<f64> {
        npz_values(&format!("{}/reference.npz", self.name), array)
    }

    fn ints(&self, array: &str) -> Vec<usize> {
        self.values(array).iter().map(|&v| v as usize).collect()
    }

    fn encoded(&self) -> Array {
        let values: Vec<f32> = self.values("encoded").iter().map(|&v| v as f32).collect();
        let dims = self.config.encoder.d_model;
        Array::from_slice(&values, &[1, values.len() as i32 / dims, dims]).unwrap()
    }

    fn text(&self) -> String {
        std::fs::read_to_string(folder(self.name).join("reference.txt")).unwrap()
    }

    /// Ours against the reference: ids, start frames and spans identical,
    /// confidences close, and the text parakeet-mlx prints (which shows a
    /// byte piece as its name, where SentencePiece decodes the byte).
    fn check_decode(&self, ours: &[DecodedToken]) {
        let field = |f: fn(&DecodedToken) -> usize| ours.iter().map(f).collect::<Vec<_>>();
        assert_eq!(
            field(|t| t.id as usize),
            self.ints("tokens"),
            "{}",
            self.name
        );
        assert_eq!(
            field(|t| t.start_frame),
            self.ints("starts"),
            "{}",
            self.name
        );
        assert_eq!(field(|t| t.frames), self.ints("frames"), "{}", self.name);
        let confidence = max_error(
            &ours.iter().map(|t| t.confidence).collect::<Vec<_>>(),
            &self.values("confidence"),
        );
        assert!(
            confidence < CONFIDENCE_TOLERANCE,
            "{}: confidence off by {confidence}",
            self.name
        );
        let tokenizer = ParakeetTokenizer::from_config(&self.config).unwrap();
        let ids: Vec<u32> = ours.iter().map(|t| t.id).collect();
        assert_eq!(
            tokenizer.decode(&ids),
            self.text().replace("<0x0A>", "\n"),
            "{}",
            self.name
        );
        eprintln!(
            "{}: {} tokens match, confidence within {confidence:.1e}",
            self.name,
            ours.len()
        );
    }
}

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn max_error(ours: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    ours.iter()
        .zip(reference)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max)
}

/// The first steps' joint logits, each recomputed from the prediction
/// network fed the reference's tokens so far and the step's frame.
fn check_joint_logits(fixture: &Fixture, transducer: &Transducer) {
    let tokens = fixture.ints("tokens");
    let frames = fixture.ints("joint_frames");
    let prefixes = fixture.ints("joint_prefix");
    let reference = fixture.values("joint_logits");
    let classes = reference.len() / frames.len();
    let encoded = fixture.encoded();
    let mut worst: f64 = 0.0;
    for (step, (&frame, &prefix)) in frames.iter().zip(&prefixes).enumerate() {
        let mut state = transducer.prediction.step(None, None).unwrap();
        for &id in &tokens[..prefix] {
            state = transducer
                .prediction
                .step(Some(id as u32), Some(&state))
                .unwrap();
        }
        let at = encoded
            .slice_axis(1, frame as i32, frame as i32 + 1)
            .unwrap();
        let logits = transducer.joint.forward(&at, &state.output).unwrap();
        assert_eq!(logits.size(), classes);
        let err = max_error(
            &logits.to_vec::<f32>().unwrap(),
            &reference[step * classes..(step + 1) * classes],
        );
        assert!(
            err < LOGIT_TOLERANCE,
            "{} step {step}: logits off by {err}",
            fixture.name
        );
        worst = worst.max(err);
    }
    eprintln!(
        "{}: joint logits of {} steps within {worst:.1e}",
        fixture.name,
        frames.len()
    );
}

fn check_transducer(name: &'static str) {
    let fixture = Fixture::open(name);
    let transducer = Transducer::load(&fixture.weights, &fixture.config).unwrap();
    check_joint_logits(&fixture, &transducer);
    fixture.check_decode(&transducer.decode_greedy(&fixture.encoded()).unwrap());
}

#[test]
fn tdt_greedy_matches_parakeet_mlx() {
    check_transducer("parakeet_dec_tdt");
}

#[test]
fn rnnt_greedy_matches_parakeet_mlx() {
    check_transducer("parakeet_dec_rnnt");
}

/// Joint and embedding quantized by `mlx.nn.quantize` (8 bits, groups of 32).
#[test]
fn quantized_tdt_greedy_matches_parakeet_mlx() {
    check_transducer("parakeet_dec_tdt_q8");
}

#[test]
fn ctc_greedy_matches_parakeet_mlx() {
    let fixture = Fixture::open("parakeet_dec_ctc");
    let asr_models::parakeet::config::DecoderConfig::Ctc(head) = &fixture.config.decoder else {
        panic!("not a CTC config");
    };
    let ctc = CtcHead::load(&fixture.weights, "decoder", head).unwrap();
    let log_probs = ctc.log_probs(&fixture.encoded()).unwrap();
    let err = max_error(
        &log_probs.to_vec::<f32>().unwrap(),
        &fixture.values("log_probs"),
    );
    assert!(err < LOGIT_TOLERANCE, "log-probs off by {err}");
    eprintln!("parakeet_dec_ctc: log-probs within {err:.1e}");
    fixture.check_decode(&ctc.decode_greedy(&fixture.encoded()).unwrap());
}

#[test]
fn a_batch_is_refused() {
    let fixture = Fixture::open("parakeet_dec_tdt");
    let transducer = Transducer::load(&fixture.weights, &fixture.config).unwrap();
    let two = mlx::concatenate(&[&fixture.encoded(), &fixture.encoded()], 0).unwrap();
    assert!(transducer.decode_greedy(&two).is_err());
}

fn npz_at<T: ndarray_npy::ReadableElement + Clone>(path: &Path, name: &str) -> Vec<T> {
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let a: ndarray::ArrayD<T> = npz.by_name(name).unwrap();
    a.iter().cloned().collect()
}

/// Decoder time per token at parakeet-tdt-0.6b-v2's dimensions against
/// parakeet-mlx's on the same random head and encoder output (made by the
/// script's `--real DIR`), the tokens identical.
#[test]
#[ignore]
fn tdt_real_dimensions_speed() {
    let Some(dir) = std::env::var_os("PARAKEET_TDT_REAL").map(PathBuf::from) else {
        eprintln!("skipped: set PARAKEET_TDT_REAL to a folder the script's --real wrote");
        return;
    };
    let config = ParakeetConfig::load(&dir.join("config.json")).unwrap();
    let weights = Weights::load(&dir.join("weights.safetensors"), config.quantization).unwrap();
    let transducer = Transducer::load(&weights, &config).unwrap();
    let reference = dir.join("reference.npz");
    let encoded: Vec<f32> = npz_at(&reference, "encoded");
    let dims = config.encoder.d_model;
    let encoded = Array::from_slice(&encoded, &[1, encoded.len() as i32 / dims, dims]).unwrap();
    let best = (0..3)
        .map(|_| {
            let begin = std::time::Instant::now();
            let tokens = transducer.decode_greedy(&encoded).unwrap();
            (begin.elapsed().as_secs_f64(), tokens)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    let (seconds, tokens) = best;
    let ids: Vec<i64> = tokens.iter().map(|t| i64::from(t.id)).collect();
    assert_eq!(ids, npz_at::<i64>(&reference, "tokens"));
    let starts: Vec<i64> = tokens.iter().map(|t| t.start_frame as i64).collect();
    assert_eq!(starts, npz_at::<i64>(&reference, "starts"));
    let theirs = npz_at::<f64>(&reference, "seconds")[0];
    let per_token = |s: f64| s * 1e3 / tokens.len() as f64;
    eprintln!(
        "{} tokens: ours {:.2} ms/token, parakeet-mlx {:.2} ms/token ({:.1}x)",
        tokens.len(),
        per_token(seconds),
        per_token(theirs),
        theirs / seconds
    );
}

#[test]
fn a_ctc_model_has_no_transducer_and_a_missing_weight_is_named() {
    let ctc = Fixture::open("parakeet_dec_ctc");
    let err = Transducer::load(&ctc.weights, &ctc.config).unwrap_err();
    assert!(err.to_string().contains("prediction-network"), "{err}");

    let tdt = Fixture::open("parakeet_dec_tdt");
    let mut arrays: std::collections::BTreeMap<String, Array> = tdt
        .weights
        .arrays()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    arrays.remove("decoder.prediction.dec_rnn.lstm.1.Wh");
    let err = Transducer::load(&Weights::new(arrays, None), &tdt.config).unwrap_err();
    assert!(
        err.to_string()
            .contains("decoder.prediction.dec_rnn.lstm.1.Wh"),
        "{err}"
    );
}
