//! Parakeet through the pipeline: a tiny random TDT model in the
//! mlx-community layout (converted on first use) transcribes jfk.wav as
//! parakeet-mlx does (scripts/make_parakeet_transcribe_fixtures.py); long
//! recordings are joined from overlapping chunks at each overlap's middle;
//! Whisper-only settings are refused by name.

use std::path::{Path, PathBuf};

use asr_models::parakeet::TimedWord;
use asr_pipeline::stages::transcribe::parakeet::{
    ParakeetTranscriber, CHUNK_SECONDS, OVERLAP_SECONDS,
};
use asr_pipeline::{DecodeOptions, Pipeline, Quantize};
use serde::Deserialize;

mod common;
use common::{assert_refused, jfk, read_jfk, stage_lines};

const SAMPLE_RATE: usize = 16_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tiny_model() -> String {
    fixture("parakeet-tiny").display().to_string()
}

#[derive(Deserialize)]
struct Reference {
    text: String,
    tokens: Vec<ReferenceToken>,
}

#[derive(Deserialize)]
struct ReferenceToken {
    id: u32,
    start: f64,
    duration: f64,
    confidence: f32,
}

#[test]
fn a_tiny_tdt_model_transcribes_jfk_as_parakeet_mlx_does() {
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(fixture("parakeet-jfk.json")).unwrap())
            .unwrap();
    let pipeline = Pipeline::builder()
        .model(tiny_model())
        .quantize(Quantize::default())
        .decode(DecodeOptions {
            word_timestamps: true,
            ..DecodeOptions::default()
        })
        .build()
        .unwrap();
    let transcript = pipeline.transcribe_file(&jfk()).unwrap();

    let tokens: Vec<u32> = transcript
        .segments
        .iter()
        .flat_map(|s| s.tokens.iter().copied())
        .collect();
    let expected: Vec<u32> = reference.tokens.iter().map(|t| t.id).collect();
    assert_eq!(tokens, expected);
    assert_eq!(transcript.text.trim(), reference.text);

    // Each word starts at its first token and ends where its last token's
    // duration ends; its probability is its tokens' mean confidence.
    let words: Vec<_> = transcript.segments.iter().flat_map(|s| &s.words).collect();
    assert!(words.len() > 10, "{} words", words.len());
    let starts_word = word_starts();
    let mut next = 0;
    for word in words {
        let first = &reference.tokens[next];
        assert!((word.word.start - first.start).abs() < 1e-9, "{word:?}");
        let pieces = reference.tokens[next..]
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, t)| starts_word[t.id as usize])
            .map_or(reference.tokens.len() - next, |(i, _)| i);
        let part = &reference.tokens[next..next + pieces];
        let end = part
            .iter()
            .map(|t| t.start + t.duration)
            .fold(f64::MIN, f64::max);
        assert!((word.word.end - end).abs() < 1e-9, "{word:?}");
        let confidence = part.iter().map(|t| t.confidence).sum::<f32>() / part.len() as f32;
        assert!(
            (word.word.probability - confidence).abs() < 1e-4,
            "{word:?}"
        );
        next += pieces;
    }
    assert_eq!(next, reference.tokens.len());
}

/// Whether each piece of the fixture's vocabulary starts with `▁`.
fn word_starts() -> Vec<bool> {
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("parakeet-tiny/config.json")).unwrap(),
    )
    .unwrap();
    config["joint"]["vocabulary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().starts_with('▁'))
        .collect()
}

#[test]
fn long_recordings_are_joined_from_overlapping_chunks_at_each_overlaps_middle() {
    // jfk.wav at changing gains, 250 s: chunks at 0, 105 and 210 s.
    let jfk = read_jfk();
    let total = 250 * SAMPLE_RATE;
    let samples: Vec<f32> = (0..total)
        .map(|i| jfk[i % jfk.len()] * (0.5 + 0.1 * ((i / jfk.len()) % 5) as f32))
        .collect();
    let spec = tiny_model();
    let transcriber = ParakeetTranscriber::load_with(&spec, Quantize::default()).unwrap();
    let blocks = samples.chunks(7_777).map(|b| Ok(b.to_vec()));
    let transcript = transcriber
        .transcribe_blocks(blocks, true, &|_| {})
        .unwrap();
    let words: Vec<(String, f64, f64)> = transcript
        .segments
        .iter()
        .flat_map(|s| &s.words)
        .map(|w| (w.word.word.trim().to_string(), w.word.start, w.word.end))
        .collect();

    let (chunk, step) = (CHUNK_SECONDS, CHUNK_SECONDS - OVERLAP_SECONDS);
    let half = OVERLAP_SECONDS as f64 / 2.0;
    let mut expected = Vec::new();
    for (k, start) in [0, step, 2 * step].into_iter().enumerate() {
        let end = (start + chunk).min(250);
        let from = if k == 0 {
            f64::MIN
        } else {
            start as f64 + half
        };
        let to = if end == 250 {
            f64::MAX
        } else {
            end as f64 - half
        };
        let recognized = transcriber
            .model()
            .transcribe_samples(&samples[start * SAMPLE_RATE..end * SAMPLE_RATE])
            .unwrap();
        expected.extend(
            recognized
                .words
                .into_iter()
                .map(|w: TimedWord| w.shifted(start as f64))
                .filter(|w| w.start >= from && w.start < to)
                .map(|w| (w.text, w.start, w.end)),
        );
    }
    assert!(expected.len() > 100, "{} words", expected.len());
    assert_eq!(words.len(), expected.len());
    for (ours, theirs) in words.iter().zip(&expected) {
        assert_eq!(ours.0, theirs.0);
        assert!((ours.1 - theirs.1).abs() < 1e-9 && (ours.2 - theirs.2).abs() < 1e-9);
    }
    assert_eq!(transcript.timings.windows, 3);
    assert!((transcript.timings.audio - 250.0).abs() < 1e-9);
}

#[test]
fn whisper_only_settings_are_refused_by_name() {
    let decode = "language = \"en\"\nbeam_size = 5\ninitial_prompt = \"x\"\ntemperature = 0.4\n";
    let keys = ["language", "beam_size", "initial_prompt"];
    assert_refused(&tiny_model(), decode, &keys);
}

#[test]
fn the_plan_names_the_parakeet_stages() {
    let text = stage_lines(&tiny_model());
    assert!(text.contains("NeMo log-mel on MLX (16 mel bins)"), "{text}");
    assert!(text.contains("FastConformer encoder"), "{text}");
    assert!(text.contains("greedy TDT decoding"), "{text}");
}
