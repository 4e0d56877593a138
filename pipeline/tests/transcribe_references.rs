//! Long-form transcription against reference implementations on the same
//! weights (fixture written by scripts/make_transcribe_fixtures.py):
//!
//! - tiny.en vs openai-whisper's `transcribe()`: jfk.wav, and the LibriSpeech
//!   clips three times over with 2 s gaps (several 30 s windows, so the
//!   seek loop, timestamp cuts and previous-text prompts all matter), with
//!   default options, without conditioning, and without timestamps. The
//!   audio is bit-identical on both sides (16 kHz 16-bit FLAC), so segments
//!   must agree token for token.
//! - Silence: jfk, 45 s of digital silence and a LibriSpeech clip, with
//!   word timestamps, without and with `hallucination_silence_threshold`
//!   (nothing is written inside the gap; segments equal openai-whisper's);
//!   30 s of silence alone (openai-whisper writes " you", so do we); 30 s
//!   of white noise (no text).
//! - base (multilingual) vs mlx-whisper: language detection on
//!   multilingual.mp3, then transcription and translation. The mp3 goes
//!   through different decoders and resamplers, so texts are compared by WER.

use std::path::{Path, PathBuf};

use asr_pipeline::stages::audio::{load_audio, AudioStream};
use asr_pipeline::stages::output::{render_with, SubtitleOptions};
use asr_pipeline::wer::word_errors;
use asr_pipeline::Format;
use asr_pipeline::{DecodeOptions, Task, Transcript, WhisperTranscriber};
use serde::Deserialize;

/// A file streamed block by block, as `Pipeline::transcribe_file` reads it.
fn stream(path: &Path) -> AudioStream {
    AudioStream::open(path).unwrap()
}

#[derive(Deserialize)]
struct Reference {
    text: String,
    language: Option<String>,
    segments: Vec<ReferenceSegment>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct ReferenceSegment {
    seek: usize,
    start: f64,
    end: f64,
    text: String,
    tokens: Vec<u32>,
    temperature: f32,
    #[serde(default)]
    words: Vec<ReferenceWord>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct ReferenceWord {
    word: String,
    start: f64,
    end: f64,
}

#[derive(Deserialize)]
struct Recipe {
    clips: Vec<String>,
    gap_seconds: f64,
    repeats: usize,
}

#[derive(Deserialize)]
struct Multilingual {
    language: String,
    language_probability: f32,
    transcribe: Reference,
    translate: Reference,
}

#[derive(Deserialize)]
struct Fixture {
    librispeech_recipe: Recipe,
    jfk: Reference,
    librispeech_x3: Reference,
    librispeech_x3_no_condition: Reference,
    librispeech_x3_without_timestamps: Reference,
    jfk_words: Reference,
    librispeech_x3_words: Reference,
    silence_gap_recipe: SilenceGapRecipe,
    silence_gap_words: Reference,
    silence_gap_hallucination_2s: Reference,
    silence_30s: Reference,
    jfk_words_vtt_highlight: String,
    jfk_words_vtt_4_words: String,
    multilingual: Multilingual,
}

/// VTT cues as (start ms, end ms, text), whichever clock format wrote them.
fn vtt_cues(vtt: &str) -> Vec<(i64, i64, String)> {
    let ms = |clock: &str| {
        clock.split([':', '.']).fold(0i64, |acc, part| {
            // h:m:s.mmm or m:s.mmm; the last part is milliseconds.
            if part.len() == 3 {
                acc * 1000 + part.parse::<i64>().unwrap()
            } else {
                acc * 60 + part.parse::<i64>().unwrap()
            }
        })
    };
    vtt.split("\n\n")
        .filter_map(|cue| {
            let (times, text) = cue.trim().split_once('\n')?;
            let (start, end) = times.split_once(" --> ")?;
            Some((ms(start), ms(end), text.to_string()))
        })
        .collect()
}

#[derive(Deserialize)]
struct SilenceGapRecipe {
    before: String,
    gap_seconds: f64,
    after: String,
}

fn fixture() -> Fixture {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transcribe-references.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn shared_data() -> Option<PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if data.is_dir() {
        Some(data)
    } else {
        eprintln!("skipped: ../shared/data not present");
        None
    }
}

fn load(model: &str) -> Option<WhisperTranscriber> {
    match WhisperTranscriber::load(model) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("skipped: cannot load {model} from the registry: {e}");
            None
        }
    }
}

/// The recipe's recording: every clip followed by the gap, repeated.
fn joined(data: &Path, recipe: &Recipe) -> Vec<f32> {
    let gap = vec![0f32; (recipe.gap_seconds * 16_000.0) as usize];
    let clips: Vec<Vec<f32>> = recipe
        .clips
        .iter()
        .map(|c| load_audio(&data.join(c)).unwrap())
        .collect();
    let mut out = Vec::new();
    for _ in 0..recipe.repeats {
        for clip in &clips {
            out.extend_from_slice(clip);
            out.extend_from_slice(&gap);
        }
    }
    out
}

/// Segments equal token for token. Where the reference fell back to
/// sampling (temperature > 0, random on both sides), only the windows
/// before it are compared, and ours must fall back at the same window.
fn assert_same_segments(name: &str, ours: &Transcript, reference: &Reference) {
    let sampled_from = reference
        .segments
        .iter()
        .find(|s| s.temperature > 0.0)
        .map(|s| s.seek);
    let before = |seek: usize| sampled_from.is_none_or(|from| seek < from);
    let got: Vec<ReferenceSegment> = ours
        .segments
        .iter()
        .filter(|s| before(s.seek))
        .map(|s| ReferenceSegment {
            seek: s.seek,
            start: s.start,
            end: s.end,
            text: s.text.clone(),
            tokens: s.tokens.clone(),
            temperature: s.temperature,
            words: s
                .words
                .iter()
                .map(|w| ReferenceWord {
                    word: w.word.word.clone(),
                    start: w.word.start,
                    end: w.word.end,
                })
                .collect(),
        })
        .collect();
    // openai-whisper keeps empty segments (text cleared); they carry nothing.
    let want: Vec<&ReferenceSegment> = reference
        .segments
        .iter()
        .filter(|s| before(s.seek) && !s.text.trim().is_empty())
        .collect();
    assert_eq!(got.len(), want.len(), "{name}: segment count");
    let mut word_errors = Vec::new();
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.seek, &g.text, &g.tokens, g.temperature),
            (w.seek, &w.text, &w.tokens, w.temperature),
            "{name}"
        );
        let words =
            |s: &ReferenceSegment| s.words.iter().map(|w| w.word.clone()).collect::<Vec<_>>();
        assert_eq!(words(g), words(w), "{name}: words of {:?}", w.text);
        for (gw, ww) in g.words.iter().zip(&w.words) {
            word_errors.push((gw.start - ww.start).abs());
            word_errors.push((gw.end - ww.end).abs());
        }
        assert!(
            (g.start - w.start).abs() < 1e-6 && (g.end - w.end).abs() < 1e-6,
            "{name}: {g:?} vs {w:?}"
        );
    }
    if !word_errors.is_empty() {
        word_errors.sort_by(f64::total_cmp);
        let (median, max) = (
            word_errors[word_errors.len() / 2],
            word_errors[word_errors.len() - 1],
        );
        eprintln!(
            "{name}: {} word times, |ours − openai| median {:.3} s, max {:.3} s",
            word_errors.len(),
            median,
            max
        );
        assert!(
            median <= 0.02 && max <= 0.1,
            "{name}: median {median}, max {max}"
        );
    }
    assert_eq!(ours.language, reference.language, "{name}");
    match sampled_from {
        None => assert_eq!(ours.text, reference.text, "{name}"),
        Some(seek) => assert!(
            ours.segments
                .iter()
                .any(|s| s.seek == seek && s.temperature > 0.0),
            "{name}: openai-whisper fell back to sampling at frame {seek}, we did not"
        ),
    }
}

#[test]
fn tiny_en_long_form_matches_openai_whisper_segment_for_segment() {
    let (Some(data), Some(transcriber)) = (shared_data(), load("tiny.en")) else {
        return;
    };
    let fixture = fixture();
    let jfk = transcriber
        .transcribe_blocks(
            stream(&data.join("audio/jfk.wav")),
            &DecodeOptions::default(),
            &|_| {},
        )
        .unwrap();
    assert_same_segments("jfk", &jfk, &fixture.jfk);
    let words = DecodeOptions {
        word_timestamps: true,
        ..DecodeOptions::default()
    };
    let jfk_words = transcriber
        .transcribe_blocks(stream(&data.join("audio/jfk.wav")), &words, &|_| {})
        .unwrap();
    assert_same_segments("jfk words", &jfk_words, &fixture.jfk_words);
    // openai-whisper's VTT writer on the same words.
    let subtitles = [
        (true, None, &fixture.jfk_words_vtt_highlight),
        (false, Some(4), &fixture.jfk_words_vtt_4_words),
    ];
    for (highlight_words, max_words_per_line, reference) in subtitles {
        let options = SubtitleOptions {
            highlight_words,
            max_words_per_line,
        };
        let ours = render_with(&jfk_words, Format::Vtt, &options, "jfk");
        assert_eq!(vtt_cues(&ours), vtt_cues(reference), "{options:?}");
    }

    let audio = joined(&data, &fixture.librispeech_recipe);
    let variants = [
        ("default", DecodeOptions::default(), &fixture.librispeech_x3),
        (
            "no condition",
            DecodeOptions {
                condition_on_previous_text: false,
                ..DecodeOptions::default()
            },
            &fixture.librispeech_x3_no_condition,
        ),
        (
            "without timestamps",
            DecodeOptions {
                without_timestamps: true,
                ..DecodeOptions::default()
            },
            &fixture.librispeech_x3_without_timestamps,
        ),
        (
            "word timestamps",
            words.clone(),
            &fixture.librispeech_x3_words,
        ),
    ];
    for (name, options, reference) in variants {
        let ours = transcriber.transcribe(&audio, &options, &|_| {}).unwrap();
        eprintln!("{name}: {} segments", ours.segments.len());
        assert_same_segments(name, &ours, reference);
    }
}

#[test]
fn silence_gives_no_text_where_openai_whisper_gives_none() {
    let (Some(data), Some(transcriber)) = (shared_data(), load("tiny.en")) else {
        return;
    };
    let fixture = fixture();
    let recipe = &fixture.silence_gap_recipe;
    let before = load_audio(&data.join(&recipe.before)).unwrap();
    let gap_start = before.len() as f64 / 16_000.0;
    let gap_end = gap_start + recipe.gap_seconds;
    let mut audio = before;
    audio.resize(audio.len() + (recipe.gap_seconds * 16_000.0) as usize, 0.0);
    audio.extend(load_audio(&data.join(&recipe.after)).unwrap());
    let words = DecodeOptions {
        word_timestamps: true,
        ..DecodeOptions::default()
    };
    let guarded = DecodeOptions {
        hallucination_silence_threshold: Some(2.0),
        ..words.clone()
    };
    let variants = [
        ("silence gap", words, &fixture.silence_gap_words),
        (
            "silence gap, hallucination_silence_threshold = 2",
            guarded,
            &fixture.silence_gap_hallucination_2s,
        ),
    ];
    for (name, options, reference) in variants {
        let ours = transcriber.transcribe(&audio, &options, &|_| {}).unwrap();
        assert_same_segments(name, &ours, reference);
        let inside = |t: f64| t > gap_start + 0.5 && t < gap_end - 0.5;
        for word in ours.segments.iter().flat_map(|s| &s.words) {
            assert!(
                !inside(word.word.start) && !inside(word.word.end),
                "{name}: {word:?} inside the silence"
            );
        }
    }

    let silence = vec![0f32; 30 * 16_000];
    let ours = transcriber
        .transcribe(&silence, &DecodeOptions::default(), &|_| {})
        .unwrap();
    assert_same_segments("30 s of silence", &ours, &fixture.silence_30s);

    // White noise at -30 dBFS from a fixed linear congruential generator.
    let mut state = 12_345u64;
    let noise: Vec<f32> = (0..30 * 16_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.11
        })
        .collect();
    let ours = transcriber
        .transcribe(&noise, &DecodeOptions::default(), &|_| {})
        .unwrap();
    assert_eq!(ours.text.trim(), "", "noise gave {:?}", ours.text);
}

#[test]
fn base_detects_the_language_then_transcribes_and_translates_like_mlx_whisper() {
    let (Some(data), Some(transcriber)) = (shared_data(), load("base")) else {
        return;
    };
    let reference = fixture().multilingual;
    let path = data.join("audio/multilingual.mp3");
    let transcribed = transcriber
        .transcribe_blocks(stream(&path), &DecodeOptions::default(), &|_| {})
        .unwrap();
    assert_eq!(
        transcribed.language.as_deref(),
        Some(reference.language.as_str())
    );
    let p = transcribed.language_probability.unwrap();
    assert!(
        (p - reference.language_probability).abs() < 0.05,
        "{p} vs {}",
        reference.language_probability
    );
    let translate = DecodeOptions {
        task: Task::Translate,
        ..DecodeOptions::default()
    };
    let translated = transcriber
        .transcribe_blocks(stream(&path), &translate, &|_| {})
        .unwrap();
    // The first window is clear English speech; after it the two decodes
    // of the mp3 (symphonia + rubato vs ffmpeg) part ways: where the first
    // window is cut, then what the model hears in the harder second half.
    let first_window = |segments: Vec<(usize, String)>| {
        segments
            .into_iter()
            .filter(|(seek, _)| *seek == 0)
            .map(|(_, text)| text)
            .collect::<String>()
    };
    for (name, ours, theirs) in [
        ("transcribe", &transcribed, &reference.transcribe),
        ("translate", &translated, &reference.translate),
    ] {
        let ours_first = first_window(
            ours.segments
                .iter()
                .map(|s| (s.seek, s.text.clone()))
                .collect(),
        );
        let theirs_first = first_window(
            theirs
                .segments
                .iter()
                .map(|s| (s.seek, s.text.clone()))
                .collect(),
        );
        let first = word_errors(&theirs_first, &ours_first);
        let all = word_errors(&theirs.text, &ours.text);
        eprintln!(
            "{name}: WER vs mlx-whisper {:.1}% in the first window, {:.1}% overall\n  ours:   {}\n  theirs: {}",
            100.0 * first.rate(),
            100.0 * all.rate(),
            ours.text,
            theirs.text
        );
        assert!(first.rate() <= 0.05, "{name}: {:.3}", first.rate());
        assert!(all.rate() <= 0.25, "{name}: {:.3}", all.rate());
        assert_eq!(ours.language.as_deref(), Some(reference.language.as_str()));
    }
}
