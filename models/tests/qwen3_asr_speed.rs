//! The whole Qwen3-ASR model's speed at Qwen3-ASR-0.6B's dimensions, for
//! docs/benchmarks.md (driven by scripts/bench-qwen3-asr): random weights,
//! one WAV file, a fixed number of decoded tokens (the end of the reply does
//! not stop decoding), so every variant and peer runs the same steps.
//!
//! `QWEN3_SPEED_CHECKPOINT` is the original checkpoint
//! (`scripts/bench_qwen3_peer.py --make F`); its f32, q8 and q4 conversions
//! (every matrix 8- or 4-bit in groups of 64) are made beside it as
//! `F-ours-f32`, `F-ours-q8`, `F-ours-q4` on first use.
//! `QWEN3_SPEED_VARIANTS` picks among f32, q8, q4 and q8-int8 (q8 with int8
//! activations; default: all); `QWEN3_SPEED_AUDIO` is the WAV file (16 kHz
//! mono); `QWEN3_SPEED_STEPS` the decoder steps after the prefill (default
//! 64). Prints one JSON line per variant, the best of three runs by encoder +
//! prefill + decode time, phases in seconds, and the process's peak RSS so
//! far (run one variant per process for a per-variant figure).

mod common;

use std::path::{Path, PathBuf};

use asr_converters::out_folder::convert_into_folder;
use asr_converters::qwen3_asr::convert_qwen3_asr;
use asr_converters::whisper::WeightOptions;
use asr_models::quantization::Quantization;
use asr_models::qwen3_asr::{PhaseTimes, Qwen3Asr, Request};
use asr_models::Activations;

/// `checkpoint` converted at `precision` ("f32", "q8", "q4"), beside it.
fn converted(checkpoint: &Path, precision: &str) -> PathBuf {
    let name = checkpoint.file_name().unwrap().to_string_lossy();
    let out = checkpoint.with_file_name(format!("{name}-ours-{precision}"));
    if out.join("weights.safetensors").exists() {
        return out;
    }
    let bits = match precision {
        "f32" => None,
        "q8" => Some(8),
        "q4" => Some(4),
        other => panic!("unknown precision {other}"),
    };
    let opts = WeightOptions {
        quantization: bits.map(|bits| Quantization {
            group_size: 64,
            bits,
        }),
        ..WeightOptions::default()
    };
    convert_into_folder(checkpoint, &out, false, |from, staged| {
        convert_qwen3_asr(from, staged, &opts)
    })
    .unwrap();
    out
}

fn bench(name: &str, folder: &Path, activations: Activations, samples: &[f32], steps: usize) {
    let clock = std::time::Instant::now();
    let model = Qwen3Asr::load_with(folder, activations).unwrap();
    let load = clock.elapsed().as_secs_f64();
    // The first token comes out of the prefill; each further one is a step.
    let request = Request {
        max_new_tokens: steps + 1,
        stop_at_eos: false,
        ..Request::default()
    };
    let decode = |t: &PhaseTimes| t.blocks + t.output_layer + t.argmax;
    let total = |t: &PhaseTimes| t.encoder + t.prefill + decode(t);
    let mut best: Option<PhaseTimes> = None;
    for _ in 0..3 {
        let t = model.transcribe_samples(samples, &request).unwrap().times;
        assert_eq!(t.decoded_tokens, steps + 1, "decoding stopped early");
        if best.as_ref().is_none_or(|b| total(&t) < total(b)) {
            best = Some(t);
        }
    }
    let t = best.unwrap();
    let per_token = |d: std::time::Duration| 1000.0 * d.as_secs_f64() / steps as f64;
    println!(
        "{{\"variant\": \"{name}\", \"mel_s\": {:.4}, \"encoder_s\": {:.4}, \"prefill_s\": {:.4}, \
         \"decode_s\": {:.4}, \"decoded\": {steps}, \"prompt\": {}, \"ms_per_token\": {:.2}, \
         \"blocks_ms_per_token\": {:.2}, \"head_ms_per_token\": {:.2}, \"load_s\": {load:.3}, \
         \"audio_s\": {:.3}, \"peak_rss_mb\": {:.0}}}",
        t.mel.as_secs_f64(),
        t.encoder.as_secs_f64(),
        t.prefill.as_secs_f64(),
        decode(&t).as_secs_f64(),
        t.prompt_tokens,
        per_token(decode(&t)),
        per_token(t.blocks),
        per_token(t.output_layer),
        samples.len() as f64 / 16000.0,
        peak_rss_mb()
    );
}

/// The process's peak resident set (VmHWM), in MiB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[test]
#[ignore]
fn real_dimensions_speed() {
    let (Some(checkpoint), Some(audio)) = (
        std::env::var_os("QWEN3_SPEED_CHECKPOINT").map(PathBuf::from),
        std::env::var_os("QWEN3_SPEED_AUDIO").map(PathBuf::from),
    ) else {
        eprintln!("skipped: set QWEN3_SPEED_CHECKPOINT and QWEN3_SPEED_AUDIO");
        return;
    };
    let steps = std::env::var("QWEN3_SPEED_STEPS").map_or(64, |s| s.parse().unwrap());
    let variants = std::env::var("QWEN3_SPEED_VARIANTS").unwrap_or("f32,q8,q4,q8-int8".into());
    let samples = common::read_wav(&audio);
    for variant in variants.split(',') {
        let (precision, activations) = match variant.strip_suffix("-int8") {
            Some(precision) => (precision, Activations::Int8),
            None => (variant, Activations::F32),
        };
        let folder = converted(&checkpoint, precision);
        bench(variant, &folder, activations, &samples, steps);
    }
}
