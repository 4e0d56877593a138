//! Qwen3-ASR through the pipeline, with the tiny random model whose
//! recognizer matches transformers (models/tests/qwen3_asr_model.rs):
//! settings reach the prompt, long recordings are cut in silence, and
//! settings the model cannot honour are refused by name.

use std::path::Path;

use asr_models::qwen3_asr::{EncoderCache, Request};
use asr_pipeline::stages::transcribe::qwen3_asr::{
    Qwen3AsrTranscriber, SEARCH_SECONDS, SEGMENT_SECONDS,
};
use asr_pipeline::{DecodeOptions, Pipeline, Quantize};

mod common;
use common::{assert_refused, jfk, read_jfk, stage_lines};

const SAMPLE_RATE: usize = 16_000;

fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tests/fixtures/qwen3_asr_model")
        .display()
        .to_string()
}

#[test]
fn language_and_prompt_reach_the_model() {
    let decode = DecodeOptions {
        language: Some("en".into()),
        initial_prompt: Some("Kennedy's inaugural address".into()),
        ..DecodeOptions::default()
    };
    let pipeline = Pipeline::builder()
        .model(tiny_model())
        .quantize(Quantize::default())
        .decode(decode)
        .build()
        .unwrap();
    let transcript = pipeline.transcribe_file(&jfk()).unwrap();

    let transcriber = Qwen3AsrTranscriber::load_with(&tiny_model(), Quantize::default()).unwrap();
    let request = Request {
        language: Some("English".into()),
        context: "Kennedy's inaugural address".into(),
        ..Request::default()
    };
    let direct = transcriber
        .model()
        .transcribe_samples(&read_jfk(), &request)
        .unwrap();
    assert!(!direct.text.is_empty());
    assert_eq!(transcript.text.trim(), direct.text);
    assert_eq!(transcript.language.as_deref(), Some("en"));
    assert_eq!(transcript.segments.len(), 1);
    let segment = &transcript.segments[0];
    let tokens: Vec<i32> = segment.tokens.iter().map(|&t| t as i32).collect();
    assert_eq!(tokens, direct.tokens);
    assert_eq!((segment.start, segment.end), (0.0, 11.0));
    let t = &transcript.timings;
    assert_eq!(t.tokens, direct.tokens.len());
    assert!(t.decoder_prompt > 0.0 && t.decoder_blocks > 0.0 && t.decoder_logits > 0.0);
}

#[test]
fn long_recordings_are_cut_in_the_quietest_moment_near_each_boundary() {
    // jfk.wav over and over, 0.6 s of silence after each: 75 s.
    let jfk = read_jfk();
    let gap = 6 * SAMPLE_RATE / 10;
    let mut samples = Vec::new();
    while samples.len() < 75 * SAMPLE_RATE {
        samples.extend_from_slice(&jfk);
        samples.resize(samples.len() + gap, 0.0);
    }
    samples.truncate(75 * SAMPLE_RATE);
    let transcriber = Qwen3AsrTranscriber::load_with(&tiny_model(), Quantize::default()).unwrap();
    let request = Request::default();
    let blocks = samples.chunks(7_777).map(|b| Ok(b.to_vec()));
    let transcript = transcriber
        .transcribe_blocks(blocks, &request, &|_| {})
        .unwrap();

    let segments = &transcript.segments;
    assert_eq!(segments.len(), 3);
    let mut start = 0.0;
    for s in segments {
        assert_eq!(s.start, start);
        let from = (s.start * SAMPLE_RATE as f64).round() as usize;
        let to = (s.end * SAMPLE_RATE as f64).round() as usize;
        if to < samples.len() {
            let length = s.end - s.start;
            let (aim, search) = (SEGMENT_SECONDS as f64, SEARCH_SECONDS as f64);
            assert!((aim - search..aim + search).contains(&length), "{length}");
            // The cut is in a gap: silence 50 ms either side.
            let around = &samples[to - SAMPLE_RATE / 20..to + SAMPLE_RATE / 20];
            assert!(around.iter().all(|&x| x == 0.0), "cut at {} s", s.end);
        }
        let own = transcriber
            .model()
            .transcribe_samples(&samples[from..to], &request)
            .unwrap();
        assert_eq!(s.text.trim(), own.text);
        start = s.end;
    }
    assert_eq!(start, 75.0);
    assert_eq!(transcript.timings.windows, 3);
}

#[test]
fn settings_the_model_cannot_honour_are_refused_by_name() {
    let decode =
        "language = \"tlh\"\nbeam_size = 5\ntask = \"translate\"\nword_timestamps = true\n";
    let keys = ["language", "beam_size", "task", "word_timestamps"];
    assert_refused(&tiny_model(), decode, &keys);
}

#[test]
fn the_plan_names_the_qwen3_asr_stages() {
    let text = stage_lines(&tiny_model());
    assert!(
        text.contains("Whisper log-mel on MLX (128 mel bins)"),
        "{text}"
    );
    assert!(
        text.contains("Qwen3-ASR audio encoder + projector"),
        "{text}"
    );
    assert!(
        text.contains("Qwen3 LLM (2 layers, hidden 48, 4/2"),
        "{text}"
    );
    assert!(text.contains("language detected by the model"), "{text}");
}

#[test]
fn a_forced_prefix_is_continued_as_the_model_would_have_continued_it() {
    let transcriber = Qwen3AsrTranscriber::load_with(&tiny_model(), Quantize::default()).unwrap();
    let model = transcriber.model();
    let forced = Request {
        language: Some("English".into()),
        ..Request::default()
    };
    let whole = model.transcribe_samples(&read_jfk(), &forced).unwrap();
    // The text of the reply's first tokens, as many as the tokenizer gives
    // back as those same tokens (a random model's replies are not all
    // canonical BPE): the model's own start of the reply.
    let tokenizer = model.tokenizer();
    let (n, prefix) = (1..whole.tokens.len())
        .rev()
        .map(|n| (n, tokenizer.decode(&whole.tokens[..n]).unwrap()))
        .find(|(n, text)| tokenizer.encode(text).unwrap() == whole.tokens[..*n])
        .expect("a prefix that encodes back to its tokens");
    let continued = model
        .transcribe_samples(
            &read_jfk(),
            &Request {
                prefix: prefix.clone(),
                // Capped where the whole reply was.
                max_new_tokens: forced.max_new_tokens - n,
                ..forced.clone()
            },
        )
        .unwrap();
    assert_eq!(continued.tokens, whole.tokens[n..]);
    assert_eq!(continued.text, whole.text);
    // Without a language the reply names one before the text: a prefix
    // cannot be placed.
    let unplaced = Request {
        prefix,
        ..Request::default()
    };
    let err = model
        .transcribe_samples(&read_jfk(), &unplaced)
        .unwrap_err();
    assert!(err.to_string().contains("needs a language"), "{err}");
}

#[test]
fn a_growing_clip_encodes_only_the_audio_after_its_complete_windows() {
    let transcriber = Qwen3AsrTranscriber::load_with(&tiny_model(), Quantize::default()).unwrap();
    let model = transcriber.model();
    // jfk.wav's first 8.5 s twice: every prefix longer than 8.5 s has the
    // same loudest frame, so a window's log-mel does not depend on where
    // the clip ends.
    let jfk = read_jfk();
    let head = &jfk[..SAMPLE_RATE * 17 / 2];
    let clip = [head, head].concat();
    let rows = |a: &mlx::Array| a.dim(0).unwrap() as usize;
    let audio = &model.config().audio_config;
    // Complete windows: those that audio follows (100 mel frames a second).
    let complete = |seconds: usize| (seconds * 100 - 1) / audio.n_window_infer;
    let mut cache = EncoderCache::default();
    let first = model
        .encode_cached(&clip[..SAMPLE_RATE * 9], &mut cache)
        .unwrap();
    let kept = cache.windows();
    assert_eq!(kept, complete(9));
    let grown = model
        .encode_cached(&clip[..SAMPLE_RATE * 17], &mut cache)
        .unwrap();
    assert_eq!(cache.windows(), complete(17));
    let fresh = model.encode(&clip[..SAMPLE_RATE * 17]).unwrap();
    assert_eq!(rows(&grown), rows(&fresh));
    let values = |a: &mlx::Array| a.to_vec::<f32>().unwrap();
    let differ = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    assert!(differ(&values(&grown), &values(&fresh)) < 1e-4);
    // The first call's complete windows were reused as they were.
    let reused = values(&first).len() / rows(&first) * audio.attention_window() * kept;
    assert_eq!(values(&grown)[..reused], values(&first)[..reused]);
    // Another clip's start is not taken for this one's.
    let other: Vec<f32> = clip[..SAMPLE_RATE * 17].iter().map(|s| s * 0.5).collect();
    let encoded = model.encode_cached(&other, &mut cache).unwrap();
    let fresh = model.encode(&other).unwrap();
    assert!(differ(&values(&encoded), &values(&fresh)) < 1e-4);
}
