//! Live transcription with Whisper tiny.en, replayed on the shared clips
//! through the same stream a microphone feeds: finals are never taken
//! back, cover the audio once (no gaps, no words twice at the buffer's
//! cuts), read as the offline transcript of the same audio does, and an
//! interrupted stream still makes what it heard final.

mod common;

use std::path::Path;
use std::sync::Arc;

use asr_pipeline::stages::audio::load_audio;
use asr_pipeline::stream::replay::{replay, Clock, Replay};
use asr_pipeline::stream::{EventKind, StreamOptions, TimedWord};
use asr_pipeline::wer::{word_errors, words};
use asr_pipeline::{Pipeline, PipelineError, Quantize};

/// A pipeline of `model` with its weights as published.
fn unquantized(model: &str) -> Arc<Pipeline> {
    let pipeline = Pipeline::builder()
        .model(model)
        .quantize(Quantize::default())
        .build()
        .unwrap();
    Arc::new(pipeline)
}

fn tiny_en() -> Arc<Pipeline> {
    unquantized("tiny.en")
}

fn shared(path: &str) -> Option<Vec<f32>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(path);
    if !path.exists() {
        eprintln!("skipped: {} is absent", path.display());
        return None;
    }
    Some(load_audio(&path).unwrap())
}

/// jfk.wav, the four LibriSpeech clips and jfk.wav again, half a second of
/// silence between them: 45 s, several cuts of the buffer.
fn clips() -> Option<Vec<f32>> {
    let mut all = Vec::new();
    let pause = vec![0.0f32; 8000];
    let mut names = vec!["audio/jfk.wav".to_string()];
    for (chapter, n) in [("134686", 0), ("134686", 1), ("134691", 0), ("134691", 1)] {
        names.push(format!(
            "librispeech/LibriSpeech/test-clean/1089/{chapter}/1089-{chapter}-000{n}.flac"
        ));
    }
    names.push("audio/jfk.wav".into());
    for name in names {
        all.extend(shared(&name)?);
        all.extend(&pause);
    }
    Some(all)
}

/// `samples` in the 1 s blocks a file is read in.
fn blocks(samples: &[f32]) -> impl Iterator<Item = Result<Vec<f32>, PipelineError>> + '_ {
    samples.chunks(16_000).map(|c| Ok(c.to_vec()))
}

fn final_words(replay: &Replay) -> Vec<TimedWord> {
    replay
        .finals()
        .flat_map(|e| e.event.words.clone().expect("Whisper times its words"))
        .collect()
}

/// Finals in order, each final event's words
/// announced by the partial before it, no partial left at the end, and the
/// final text within `max_wer` of the offline transcript of `samples`.
fn check_stream(pipeline: &Arc<Pipeline>, samples: &[f32], max_wer: f64) -> Replay {
    let mut stream = pipeline.stream(StreamOptions::default()).unwrap();
    let replayed = replay(&mut stream, blocks(samples), Clock::Ideal, |_| {}).unwrap();
    assert_in_order(&final_words(&replayed));
    let mut partial: Vec<String> = Vec::new();
    let mut last_final_start = f64::NEG_INFINITY;
    for emitted in &replayed.events {
        let event = &emitted.event;
        match event.kind {
            EventKind::Partial => partial = words_of(&event.text),
            EventKind::Final => {
                assert!(event.start >= last_final_start - 0.1, "{event:?}");
                last_final_start = event.start;
                // A final made by agreement was the start of the partial.
                let said = words_of(&event.text);
                if emitted.at < replayed.audio_seconds {
                    assert!(
                        partial.starts_with(&said),
                        "{said:?} was not announced by {partial:?}"
                    );
                }
                partial.clear();
            }
        }
    }
    let last = replayed.events.last().unwrap();
    assert!(
        last.event.kind == EventKind::Final || last.event.text.is_empty(),
        "a partial was left at the end: {last:?}"
    );
    let offline = pipeline.transcribe(samples).unwrap().text;
    let errors = word_errors(&offline, &replayed.final_text());
    eprintln!(
        "offline: {offline}\nstream:  {}\nWER vs offline {:.3}, RTF {:.2}",
        replayed.final_text(),
        errors.rate(),
        replayed.real_time_factor()
    );
    assert!(
        errors.rate() <= max_wer,
        "WER {} against offline",
        errors.rate()
    );
    replayed
}

/// Each word starts after the one before started, but for the slack
/// re-transcription moves word times by (0.1 s; a buffer's last word is
/// often timed into the pause after it, so ends may overlap).
fn assert_in_order(words: &[TimedWord]) {
    for pair in words.windows(2) {
        assert!(
            pair[1].start >= pair[0].start - 0.1 - 1e-9,
            "final words out of order: {pair:?}"
        );
    }
}

fn words_of(text: &str) -> Vec<String> {
    words(text)
}

#[test]
fn jfk_streams_to_its_offline_transcript() {
    let Some(samples) = shared("audio/jfk.wav") else {
        return;
    };
    let replayed = check_stream(&tiny_en(), &samples, 0.05);
    // Words were confirmed while the audio went on, not all at the end.
    let early = replayed
        .finals()
        .filter(|e| e.at < replayed.audio_seconds)
        .count();
    assert!(early >= 3, "only {early} finals before the end");
}

#[test]
fn clips_stream_across_buffer_cuts_without_gaps_or_repeats() {
    let Some(samples) = clips() else {
        return;
    };
    let replayed = check_stream(&tiny_en(), &samples, 0.05);
    // Each clip's first and last words are there once.
    let text = words_of(&replayed.final_text()).join(" ");
    assert_eq!(
        text.matches("and so my fellow americans").count(),
        2,
        "{text}"
    );
    assert_eq!(text.matches("for your country").count(), 2, "{text}");
}

#[test]
fn an_interrupted_stream_makes_what_it_heard_final() {
    let Some(samples) = shared("audio/jfk.wav") else {
        return;
    };
    let pipeline = tiny_en();
    // Stopped 6 s in ("... ask not what your country can do for you"),
    // pushed in 0.1 s blocks as a microphone delivers them.
    let heard = &samples[..16_000 * 6];
    let mut stream = pipeline.stream(StreamOptions::default()).unwrap();
    let mut events = Vec::new();
    for block in heard.chunks(1600) {
        events.extend(stream.push(block).unwrap());
    }
    events.extend(stream.finish().unwrap());
    assert!(
        stream.push(&[0.0; 1600]).is_err(),
        "a finished stream took audio"
    );
    let finals: Vec<String> = events
        .iter()
        .filter(|e| e.kind == EventKind::Final)
        .map(|e| e.text.clone())
        .collect();
    let offline = pipeline.transcribe(heard).unwrap().text;
    let errors = word_errors(&offline, &finals.join(" "));
    assert!(errors.rate() <= 0.1, "{finals:?} against {offline:?}");
    assert!(
        words_of(&finals.join(" ")).contains(&"ask".to_string()),
        "{finals:?}"
    );
}

/// The other families stream through the same interface, with the tiny
/// random models of their own tests: Parakeet's timed words by local
/// agreement, Qwen3-ASR's text (no word times) by prefix rollback.
#[test]
fn parakeet_and_qwen3_asr_stream_through_the_same_interface() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = [
        (root.join("tests/fixtures/parakeet-tiny"), true),
        (root.join("../models/tests/fixtures/qwen3_asr_model"), false),
    ];
    let samples = common::read_jfk();
    for (model, timed) in models {
        let mut stream = unquantized(&model.display().to_string())
            .stream(StreamOptions::default())
            .unwrap();
        let replayed = replay(&mut stream, blocks(&samples), Clock::Ideal, |_| {}).unwrap();
        assert!(!replayed.final_text().is_empty(), "{}", model.display());
        for e in replayed.finals() {
            assert_eq!(e.event.words.is_some(), timed, "{:?}", e.event);
        }
        if timed {
            assert_in_order(&final_words(&replayed));
        }
    }
}

/// A minute of audio through models whose hypotheses seldom agree (random
/// weights): the buffer is cut at `max_buffer` all the same, so a stream
/// holds a bounded amount of audio however long it runs.
#[test]
fn the_buffer_stays_bounded_when_hypotheses_do_not_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let jfk = common::read_jfk();
    let minute: Vec<f32> = jfk.iter().copied().cycle().take(16_000 * 60).collect();
    let options = StreamOptions {
        step: 2.0,
        trim: 6.0,
        max_buffer: 8.0,
        ..StreamOptions::default()
    };
    for model in [
        root.join("tests/fixtures/parakeet-tiny"),
        root.join("../models/tests/fixtures/qwen3_asr_model"),
    ] {
        let mut stream = unquantized(&model.display().to_string())
            .stream(options.clone())
            .unwrap();
        let mut most = 0.0f64;
        let mut finals = 0;
        for block in minute.chunks(1600) {
            let events = stream.push(block).unwrap();
            finals += events.iter().filter(|e| e.kind == EventKind::Final).count();
            most = most.max(stream.buffered_seconds());
        }
        assert!(
            most <= options.max_buffer + options.step + 0.1,
            "{most} s held"
        );
        assert!(
            finals >= 60 / 8 - 1,
            "{finals} finals from {}",
            model.display()
        );
    }
}

/// With voice activity detection in front, a pause makes the words before
/// it final and its silence leaves the buffer untranscribed.
#[test]
fn with_vad_a_pause_finalizes_the_speech_before_it() {
    let Some(jfk) = shared("audio/jfk.wav") else {
        return;
    };
    let pipeline = Arc::new(
        Pipeline::builder()
            .model("tiny.en")
            .quantize(Quantize::default())
            .vad(asr_pipeline::stages::vad::VadOptions::default())
            .build()
            .unwrap(),
    );
    let mut stream = pipeline.stream(StreamOptions::default()).unwrap();
    let mut finals = Vec::new();
    let pause = vec![0.0f32; 16_000 * 5];
    for block in [jfk.as_slice(), &pause].concat().chunks(1600) {
        for event in stream.push(block).unwrap() {
            if event.kind == EventKind::Final {
                finals.push(event.text);
            }
        }
    }
    let heard = words_of(&finals.join(" ")).join(" ");
    assert!(
        heard.ends_with("what you can do for your country"),
        "{heard}"
    );
    assert!(
        stream.buffered_seconds() < 2.0,
        "{} s of silence held",
        stream.buffered_seconds()
    );
    // The second time, the pause is the end of the stream.
    let mut events = Vec::new();
    for block in jfk.chunks(1600) {
        events.extend(stream.push(block).unwrap());
    }
    events.extend(stream.finish().unwrap());
    finals.extend(
        events
            .into_iter()
            .filter(|e| e.kind == EventKind::Final)
            .map(|e| e.text),
    );
    let all = words_of(&finals.join(" ")).join(" ");
    assert_eq!(all.matches("for your country").count(), 2, "{all}");
}
