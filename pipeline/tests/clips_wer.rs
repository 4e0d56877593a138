//! WER on the shared LJ Speech and LibriSpeech clips, next to openai-whisper's
//! own transcripts with the same tiny.en weights (fixture written by
//! scripts/make_clip_fixtures.py).
//!
//! Both run openai-whisper's default `transcribe()` decoding (timestamps,
//! seek loop, temperature 0): the 16 kHz LibriSpeech clips give the same
//! words; the 22.05 kHz LJ Speech clips go through different resamplers
//! (rubato here, ffmpeg there), so their word differences are counted and
//! bounded, and the total WER must be within 0.5 points of openai-whisper's.
//! The JSON transcripts of the LibriSpeech clips are insta snapshots
//! (tests/snapshots).

use std::path::Path;

use asr_pipeline::audio::load_audio;
use asr_pipeline::wer::{word_errors, words, WordErrors};
use asr_pipeline::{DecodeOptions, Transcriber};

#[derive(serde::Deserialize)]
struct Clip {
    id: String,
    audio: String,
    reference: String,
    openai_whisper: String,
}

#[test]
fn wer_matches_openai_whisper_on_the_shared_clips() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if !data.is_dir() {
        eprintln!("skipped: ../shared/data not present");
        return;
    }
    let transcriber = match Transcriber::load("tiny.en") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skipped: cannot load tiny.en from the registry: {e}");
            return;
        }
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clips-tiny.en.json");
    let clips: Vec<Clip> =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    assert_eq!(clips.len(), 20);
    let [mut ours_total, mut theirs_total, mut drift_total] = [WordErrors::default(); 3];
    eprintln!("{:<18} {:>7} {:>7}", "clip", "ours", "openai");
    for clip in &clips {
        let samples = load_audio(&data.join(&clip.audio)).unwrap();
        let options = DecodeOptions {
            temperature: vec![0.0],
            ..DecodeOptions::default()
        };
        let transcript = transcriber.transcribe(&samples, &options, &|_| {}).unwrap();
        let text = transcript.text.trim().to_string();
        if clip.audio.starts_with("librispeech/") {
            assert_eq!(words(&text), words(&clip.openai_whisper), "{}", clip.id);
            // The JSON output as an insta snapshot; probabilities are redacted
            // (their last digits move with BLAS threading).
            insta::assert_json_snapshot!(clip.id.as_str(), transcript, {
                ".segments[].avg_logprob" => "[logprob]",
                ".segments[].no_speech_prob" => "[prob]",
                ".segments[].compression_ratio" => "[ratio]",
            });
        }
        drift_total = drift_total + word_errors(&clip.openai_whisper, &text);
        let ours = word_errors(&clip.reference, &text);
        let theirs = word_errors(&clip.reference, &clip.openai_whisper);
        eprintln!(
            "{:<18} {:>6.1}% {:>6.1}%   {text}",
            clip.id,
            100.0 * ours.rate(),
            100.0 * theirs.rate()
        );
        ours_total = ours_total + ours;
        theirs_total = theirs_total + theirs;
    }
    let (ours, theirs) = (100.0 * ours_total.rate(), 100.0 * theirs_total.rate());
    eprintln!(
        "{:<18} {:>6.2}% {:>6.2}%  ({} reference words)",
        "total", ours, theirs, ours_total.reference_words
    );
    eprintln!(
        "words differing from openai-whisper: {}",
        drift_total.errors
    );
    assert!(
        ours <= theirs + 0.5,
        "total WER {ours:.2}% vs openai-whisper {theirs:.2}%"
    );
    assert!(
        drift_total.rate() <= 0.02,
        "{} words differ from openai-whisper",
        drift_total.errors
    );
}
