//! The wav2vec2 CTC aligner against WhisperX's procedure
//! (scripts/make_wav2vec2_align_fixtures.py): a tiny random Hugging Face
//! `Wav2Vec2ForCTC` aligns two jfk.wav segments, one with "1961," whose
//! characters are all outside the vocabulary; every word's times and the
//! tightened segments match the reference to the millisecond (the same
//! frames). A torchaudio state dict converts to a model with torchaudio's
//! logits, and `[align]` plans the aligner after recognition.

use std::path::{Path, PathBuf};

use asr_converters::wav2vec2::{
    convert_torchaudio_wav2vec2, convert_wav2vec2, read_vocabulary, TORCHAUDIO_ENGLISH_LABELS,
};
use asr_models::wav2vec2::Wav2Vec2;
use asr_pipeline::plan::StagePlan;
use asr_pipeline::stages::align::wav2vec2::Wav2Vec2Aligner;
use asr_pipeline::stages::audio::load_audio;
use asr_pipeline::{Aligner, Config, Segment, Transcript};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;
use serde::Deserialize;

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    here().join("tests/fixtures").join(name)
}

#[derive(Deserialize)]
struct Reference {
    segments: Vec<ReferenceSegment>,
}

#[derive(Deserialize)]
struct ReferenceSegment {
    start: f64,
    end: f64,
    text: String,
    aligned_start: f64,
    aligned_end: f64,
    words: Vec<ReferenceWord>,
}

#[derive(Deserialize)]
struct ReferenceWord {
    word: String,
    start: f64,
    end: f64,
    score: f32,
}

fn segment(id: usize, start: f64, end: f64, text: &str) -> Segment {
    Segment {
        id,
        seek: 0,
        start,
        end,
        text: text.into(),
        tokens: Vec::new(),
        temperature: 0.0,
        avg_logprob: 0.0,
        compression_ratio: 1.0,
        no_speech_prob: 0.0,
        words: Vec::new(),
        speaker: None,
    }
}

/// Within a millisecond, beyond the rounding both sides do.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 + 1e-9
}

#[test]
fn words_are_timed_as_whisperx_times_them() {
    let text = std::fs::read_to_string(fixture("wav2vec2-align.json")).unwrap();
    let reference: Reference = serde_json::from_str(&text).unwrap();
    let folder = tempfile::tempdir().unwrap();
    convert_wav2vec2(&fixture("wav2vec2-align"), folder.path()).unwrap();
    let aligner = Wav2Vec2Aligner::load(folder.path()).unwrap();
    let samples = load_audio(&here().join("../examples/audio/jfk.wav")).unwrap();
    let mut transcript = Transcript {
        segments: reference
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| segment(i, s.start, s.end, &s.text))
            .collect(),
        ..Transcript::default()
    };
    aligner.align(&samples, &mut transcript).unwrap();

    let mut checked = 0;
    for (ours, theirs) in transcript.segments.iter().zip(&reference.segments) {
        assert!(
            close(ours.start, theirs.aligned_start) && close(ours.end, theirs.aligned_end),
            "segment {:?}: {}–{} vs {}–{}",
            theirs.text,
            ours.start,
            ours.end,
            theirs.aligned_start,
            theirs.aligned_end
        );
        assert_eq!(ours.words.len(), theirs.words.len(), "{:?}", theirs.text);
        for (w, r) in ours.words.iter().zip(&theirs.words) {
            let w = &w.word;
            assert_eq!(w.word, format!(" {}", r.word));
            assert!(
                close(w.start, r.start) && close(w.end, r.end),
                "{:?}: {}–{} vs {}–{}",
                r.word,
                w.start,
                w.end,
                r.start,
                r.end
            );
            // Scores are rounded to 3 places on both sides.
            assert!((w.probability - r.score).abs() <= 1.5e-3, "{:?}", r.word);
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
    // Digits and punctuation are wildcards: "1961," is timed by its frames.
    let year = transcript.segments[0]
        .words
        .iter()
        .find(|w| w.word.word == " 1961,")
        .unwrap();
    assert!(year.word.end > year.word.start);
}

#[test]
fn a_segment_without_alignable_characters_keeps_its_times() {
    let folder = tempfile::tempdir().unwrap();
    convert_wav2vec2(&fixture("wav2vec2-align"), folder.path()).unwrap();
    let aligner = Wav2Vec2Aligner::load(folder.path()).unwrap();
    let samples = load_audio(&here().join("../examples/audio/jfk.wav")).unwrap();
    let mut transcript = Transcript {
        segments: vec![segment(0, 1.0, 2.0, "   "), segment(1, 20.0, 21.0, " late")],
        ..Transcript::default()
    };
    aligner.align(&samples, &mut transcript).unwrap();
    for (s, (start, end)) in transcript.segments.iter().zip([(1.0, 2.0), (20.0, 21.0)]) {
        assert_eq!((s.start, s.end), (start, end));
        assert!(s.words.is_empty());
    }
}

/// A vocabulary without the `|` delimiter skips spaces and `|` alike, so a
/// word `|` has no character to align: it takes its nearest word's times.
#[test]
fn a_word_without_alignable_characters_takes_its_neighbours_times() {
    let folder = tempfile::tempdir().unwrap();
    let labels: Vec<&str> = TORCHAUDIO_ENGLISH_LABELS
        .iter()
        .map(|&l| if l == "|" { "#" } else { l })
        .collect();
    convert_torchaudio_wav2vec2(&fixture("wav2vec2-torchaudio.pt"), &labels, folder.path())
        .unwrap();
    let aligner = Wav2Vec2Aligner::load(folder.path()).unwrap();
    let samples = load_audio(&here().join("../examples/audio/jfk.wav")).unwrap();
    let mut transcript = Transcript {
        segments: vec![segment(0, 0.5, 2.5, " and so | my fellow")],
        ..Transcript::default()
    };
    aligner.align(&samples, &mut transcript).unwrap();
    let words = &transcript.segments[0].words;
    let texts: Vec<&str> = words.iter().map(|w| w.word.word.as_str()).collect();
    assert_eq!(texts, [" and", " so", " |", " my", " fellow"]);
    let times: Vec<(f64, f64)> = words.iter().map(|w| (w.word.start, w.word.end)).collect();
    // Nearest on both sides: the earlier word wins the tie.
    assert_eq!(times[2], times[1]);
    assert_ne!(times[2], times[3]);
    assert!(
        times.windows(2).all(|p| p[0].1 <= p[1].0 || p[0] == p[1]),
        "{times:?}"
    );
}

#[test]
fn a_folder_without_a_vocabulary_is_refused_by_name() {
    let folder = tempfile::tempdir().unwrap();
    convert_wav2vec2(&fixture("wav2vec2-align"), folder.path()).unwrap();
    std::fs::remove_file(folder.path().join("vocab.json")).unwrap();
    let err = Wav2Vec2Aligner::load(folder.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("vocab.json"), "{err}");
}

#[test]
fn a_torchaudio_state_dict_converts_to_torchaudios_logits() {
    let folder = tempfile::tempdir().unwrap();
    convert_torchaudio_wav2vec2(
        &fixture("wav2vec2-torchaudio.pt"),
        &TORCHAUDIO_ENGLISH_LABELS,
        folder.path(),
    )
    .unwrap();
    let mut npz =
        NpzReader::new(std::fs::File::open(fixture("wav2vec2-torchaudio.npz")).unwrap()).unwrap();
    let samples: ArrayD<f32> = npz.by_name("samples").unwrap();
    let expected: ArrayD<f32> = npz.by_name("logits").unwrap();
    let model = Wav2Vec2::load(folder.path()).unwrap();
    let shape: Vec<i32> = samples.shape().iter().map(|&d| d as i32).collect();
    let x = mlx::Array::from_slice(samples.as_slice().unwrap(), &shape).unwrap();
    let logits = model.forward(&x).unwrap();
    let got_shape: Vec<usize> = logits.shape().iter().map(|&d| d as usize).collect();
    let got = ArrayD::from_shape_vec(IxDyn(&got_shape), logits.to_vec::<f32>().unwrap()).unwrap();
    assert_eq!(got.shape(), expected.shape());
    let worst = (&got - &expected).iter().fold(0f32, |m, d| m.max(d.abs()));
    assert!(worst < 1e-4, "max |Δ logits| = {worst}");

    let vocab = read_vocabulary(&folder.path().join("vocab.json")).unwrap();
    assert_eq!(vocab.len(), 29);
    assert_eq!((vocab["-"], vocab["|"], vocab["Z"]), (0, 1, 28));
    assert!(Wav2Vec2Aligner::load(folder.path()).is_ok());

    // Labels that do not fit the head are refused, naming the file.
    let other = tempfile::tempdir().unwrap();
    let err = convert_torchaudio_wav2vec2(&fixture("wav2vec2-torchaudio.pt"), &["-"], other.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wav2vec2-torchaudio.pt") && err.contains("29 outputs"),
        "{err}"
    );
}

#[test]
fn align_in_the_config_plans_the_aligner_after_recognition() {
    let base = fixture("");
    let config = Config::from_toml(
        "input = \"../../../examples/audio/jfk.wav\"\n[align]\nmodel = \"wav2vec2-align\"",
        &base,
    )
    .unwrap();
    let plan = StagePlan::of_config(&config).unwrap();
    let names: Vec<&str> = plan.stages.iter().map(|s| s.name).collect();
    assert_eq!(names, ["audio", "log-mel", "encoder", "decoder", "align"]);
    assert!(plan.stages[4].implementation.contains("wav2vec2-align"));

    // Without [align], Whisper's own word times stay the route.
    let plain = Config::from_toml("input = \"../../../examples/audio/jfk.wav\"", &base).unwrap();
    let plan = StagePlan::of_config(&plain).unwrap();
    assert!(plan.stages.iter().all(|s| s.name != "align"));

    let missing = Config::from_toml("[align]\nmodel = \"no-such-model\"", &base).unwrap();
    let problems = StagePlan::of_config(&missing).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("align.model:") && p.contains("no-such-model")),
        "{problems:?}"
    );
    let err = Config::from_toml("[align]\nmodel = \"x\"\nlanguage = \"en\"", &base).unwrap_err();
    assert!(err.contains("language"), "{err}");
}
