//! WER on the shared LJ Speech and LibriSpeech clips, next to openai-whisper's
//! own transcripts with the same tiny.en weights (fixture written by
//! scripts/make_clip_fixtures.py).
//!
//! Both run openai-whisper's default `transcribe()` decoding (timestamps,
//! seek loop, temperature 0). Fed the samples openai-whisper feeds itself
//! (ffmpeg resampling to 16 kHz 16-bit, when ffmpeg is installed), every
//! clip gives the same words and the total WER is within 0.5 points. With
//! our own audio input (rubato resampling) the 16 kHz LibriSpeech clips
//! still give the same words; the 22.05 kHz LJ Speech clips differ in a few
//! words, counted and bounded. The JSON transcripts of the LibriSpeech clips
//! are insta snapshots (tests/snapshots).
//!
//! Beam search (beam 5) is held to openai-whisper's beam 5 WER, word
//! timestamps to openai-whisper's `word_timestamps=True` times, and 8-bit
//! weights (`quantize = "q8"`, and `"int8"` with int8 activations where the
//! CPU has the kernels) to openai-whisper's f32 WER. Batched decoding of
//! several clips side by side is held to each clip's own transcript.

use std::path::{Path, PathBuf};

use asr_pipeline::stages::audio::load_audio;
use asr_pipeline::wer::{word_errors, words, WordErrors};
use asr_pipeline::{Activations, DecodeOptions, Quantization, Quantize, WhisperTranscriber};

#[derive(serde::Deserialize)]
struct Clip {
    id: String,
    audio: String,
    reference: String,
    openai_whisper: String,
    openai_whisper_beam5: String,
    /// (word, start, end) with `word_timestamps=True`.
    openai_whisper_words: Vec<(String, f64, f64)>,
}

/// The shared data folder, the registry's tiny.en and the fixture; `None`
/// (the test is skipped) where the data or the model cannot be had.
fn setup() -> Option<(PathBuf, WhisperTranscriber, Vec<Clip>)> {
    setup_with(None, Activations::F32)
}

fn setup_with(
    quantize: Option<Quantization>,
    activations: Activations,
) -> Option<(PathBuf, WhisperTranscriber, Vec<Clip>)> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if !data.is_dir() {
        eprintln!("skipped: ../shared/data not present");
        return None;
    }
    let transcriber = match WhisperTranscriber::load_with(
        "tiny.en",
        Quantize {
            weights: quantize,
            activations,
        },
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skipped: cannot load tiny.en from the registry: {e}");
            return None;
        }
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clips-tiny.en.json");
    let clips: Vec<Clip> =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    assert_eq!(clips.len(), 20);
    Some((data, transcriber, clips))
}

/// The clip as openai-whisper's `load_audio` reads it: ffmpeg to 16 kHz mono
/// 16-bit PCM. `None` when ffmpeg is not installed.
fn ffmpeg_audio(path: &Path) -> Option<Vec<f32>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-threads", "0", "-i"])
        .arg(path)
        .args([
            "-f",
            "s16le",
            "-ac",
            "1",
            "-acodec",
            "pcm_s16le",
            "-ar",
            "16000",
            "-",
        ])
        .output()
        .ok()?;
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    Some(
        out.stdout
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect(),
    )
}

/// Each clip's text, from openai-whisper's own samples where ffmpeg exists
/// (so that comparisons are of the decoders), else from our audio input.
fn texts_of(
    transcriber: &WhisperTranscriber,
    data: &Path,
    clips: &[Clip],
    options: &DecodeOptions,
) -> Vec<String> {
    clips
        .iter()
        .map(|clip| {
            let path = data.join(&clip.audio);
            let samples = ffmpeg_audio(&path).unwrap_or_else(|| load_audio(&path).unwrap());
            let text = transcriber
                .transcribe(&samples, options, &|_| {})
                .unwrap()
                .text;
            eprintln!("{:<18} {}", clip.id, text.trim());
            text
        })
        .collect()
}

#[test]
fn wer_matches_openai_whisper_on_the_shared_clips() {
    let Some((data, transcriber, clips)) = setup() else {
        return;
    };
    let [mut ours_total, mut theirs_total, mut drift_total, mut ffmpeg_total] =
        [WordErrors::default(); 4];
    let mut ffmpeg_missing = false;
    eprintln!("{:<18} {:>7} {:>7}", "clip", "ours", "openai");
    let options = DecodeOptions {
        temperature: vec![0.0],
        ..DecodeOptions::default()
    };
    for clip in &clips {
        let transcribe =
            |samples: &[f32]| transcriber.transcribe(samples, &options, &|_| {}).unwrap();
        let path = data.join(&clip.audio);
        let transcript = transcribe(&load_audio(&path).unwrap());
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
        if let Some(samples) = ffmpeg_audio(&path) {
            let same_input = transcribe(&samples).text;
            assert_eq!(
                words(&same_input),
                words(&clip.openai_whisper),
                "{}: ffmpeg input",
                clip.id
            );
            ffmpeg_total = ffmpeg_total + word_errors(&clip.reference, &same_input);
        } else {
            ffmpeg_missing = true;
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
    if ffmpeg_missing {
        eprintln!("ffmpeg not installed: the same-input comparison was skipped");
    } else {
        let same_input = 100.0 * ffmpeg_total.rate();
        eprintln!(
            "{:<18} {same_input:>6.2}% (our decoding of ffmpeg's samples)",
            "total"
        );
        assert!(
            (same_input - theirs).abs() <= 0.5,
            "{same_input:.2}% vs {theirs:.2}%"
        );
    }
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

#[test]
fn beam5_wer_is_no_worse_than_openai_whisper_beam5() {
    let Some((data, transcriber, clips)) = setup() else {
        return;
    };
    let options = DecodeOptions {
        temperature: vec![0.0],
        beam_size: Some(5),
        ..DecodeOptions::default()
    };
    let [mut ours_total, mut theirs_total, mut drift] = [WordErrors::default(); 3];
    let texts = texts_of(&transcriber, &data, &clips, &options);
    for (clip, text) in clips.iter().zip(&texts) {
        let ours = word_errors(&clip.reference, text);
        let theirs = word_errors(&clip.reference, &clip.openai_whisper_beam5);
        eprintln!(
            "{:<18} {:>6.1}% {:>6.1}%   {}",
            clip.id,
            100.0 * ours.rate(),
            100.0 * theirs.rate(),
            text.trim()
        );
        drift = drift + word_errors(&clip.openai_whisper_beam5, text);
        ours_total = ours_total + ours;
        theirs_total = theirs_total + theirs;
    }
    let (ours, theirs) = (100.0 * ours_total.rate(), 100.0 * theirs_total.rate());
    eprintln!(
        "beam 5 total: ours {ours:.2}%, openai-whisper {theirs:.2}%; {} words differ",
        drift.errors
    );
    assert!(
        ours <= theirs,
        "beam 5 WER {ours:.2}% vs openai-whisper {theirs:.2}%"
    );
    assert!(
        drift.rate() <= 0.02,
        "{} words differ from openai-whisper",
        drift.errors
    );
}

#[test]
fn word_times_match_openai_whisper_on_the_shared_clips() {
    let Some((data, transcriber, clips)) = setup() else {
        return;
    };
    let options = DecodeOptions {
        temperature: vec![0.0],
        word_timestamps: true,
        ..DecodeOptions::default()
    };
    let mut differences = Vec::new();
    for clip in &clips {
        let path = data.join(&clip.audio);
        let Some(samples) = ffmpeg_audio(&path) else {
            eprintln!("skipped: ffmpeg not installed (word times need openai-whisper's samples)");
            return;
        };
        let transcript = transcriber.transcribe(&samples, &options, &|_| {}).unwrap();
        let ours: Vec<_> = transcript.segments.iter().flat_map(|s| &s.words).collect();
        let theirs = &clip.openai_whisper_words;
        let text = |w: &[String]| w.join("");
        assert_eq!(
            text(&ours.iter().map(|w| w.word.word.clone()).collect::<Vec<_>>()),
            text(&theirs.iter().map(|w| w.0.clone()).collect::<Vec<_>>()),
            "{}",
            clip.id
        );
        for (a, b) in ours.iter().zip(theirs) {
            differences.push((a.word.start - b.1).abs());
            differences.push((a.word.end - b.2).abs());
        }
    }
    differences.sort_by(f64::total_cmp);
    let median = differences[differences.len() / 2];
    let max = differences[differences.len() - 1];
    eprintln!(
        "{} word boundaries: median difference {median:.3} s, max {max:.3} s",
        differences.len()
    );
    assert!(
        median <= 0.02 && max <= 0.1,
        "median {median:.3} s, max {max:.3} s"
    );
}

const Q8: Quantization = Quantization {
    bits: 8,
    group_size: 64,
};

#[test]
fn q8_weights_keep_openai_whisper_wer_on_the_clips() {
    quantized_wer_case("q8", Activations::F32);
}

#[test]
fn int8_activations_keep_openai_whisper_wer_on_the_clips() {
    if !mlx::kernels::int8_products_available() {
        eprintln!("int8 activations run as f32 on this CPU (no AVX2): the q8 case covers it");
    }
    quantized_wer_case("int8", Activations::Int8);
}

fn quantized_wer_case(name: &str, activations: Activations) {
    let Some((data, transcriber, clips)) = setup_with(Some(Q8), activations) else {
        return;
    };
    let options = DecodeOptions {
        temperature: vec![0.0],
        ..DecodeOptions::default()
    };
    let [mut ours, mut theirs, mut changed] = [WordErrors::default(); 3];
    let texts = texts_of(&transcriber, &data, &clips, &options);
    for (clip, text) in clips.iter().zip(&texts) {
        ours = ours + word_errors(&clip.reference, text);
        theirs = theirs + word_errors(&clip.reference, &clip.openai_whisper);
        changed = changed + word_errors(&clip.openai_whisper, text);
    }
    let (ours, theirs) = (100.0 * ours.rate(), 100.0 * theirs.rate());
    eprintln!(
        "{name}: WER {ours:.2}% (openai-whisper f32 {theirs:.2}%), {} of {} words differ from f32",
        changed.errors, changed.reference_words
    );
    // Quantization moves a few words, not the accuracy.
    assert!(
        ours <= theirs + 0.5,
        "{name} WER {ours:.2}% vs {theirs:.2}%"
    );
    assert!(changed.rate() < 0.03, "{changed:?}");
}

/// `transcribe_many` decodes the clips' first windows side by side: each
/// transcript must be the one the clip gets alone (same segments and
/// times, scores within float rounding), whatever shares its batch (an
/// empty recording, one that fails to read, a batch cut short), with the
/// default temperature fallback in play.
#[test]
fn batched_clips_get_their_own_transcripts() {
    let Some((data, transcriber, clips)) = setup_with(Some(Q8), Activations::F32) else {
        return;
    };
    let options = DecodeOptions {
        batch_size: 8,
        ..DecodeOptions::default()
    };
    let samples: Vec<Vec<f32>> = clips
        .iter()
        .map(|clip| load_audio(&data.join(&clip.audio)).unwrap())
        .collect();
    let alone: Vec<_> = samples
        .iter()
        .map(|s| transcriber.transcribe(s, &options, &|_| {}).unwrap())
        .collect();
    type Blocks = std::vec::IntoIter<Result<Vec<f32>, asr_pipeline::stages::audio::AudioError>>;
    let mut recordings: Vec<Blocks> = samples
        .iter()
        .map(|s| vec![Ok(s.clone())].into_iter())
        .collect();
    // An empty recording in the first batch, one failing in the second.
    recordings.insert(3, Vec::new().into_iter());
    let broken = asr_pipeline::stages::audio::AudioError::Empty {
        path: "broken.wav".into(),
    };
    recordings.insert(11, vec![Err(broken)].into_iter());
    let heard = std::cell::RefCell::new(vec![0.0f64; recordings.len()]);
    let batched = transcriber.transcribe_many(recordings, &options, &|i, p| {
        heard.borrow_mut()[i] = p.done;
    });
    assert_eq!(batched.len(), clips.len() + 2);
    let empty = batched[3].as_ref().unwrap();
    assert!(empty.segments.is_empty() && empty.text.is_empty());
    let error = batched[11].as_ref().unwrap_err().to_string();
    assert!(error.contains("broken.wav"), "{error}");
    let together: Vec<_> = batched
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 11)
        .map(|(_, t)| t.unwrap())
        .collect();
    for ((clip, a), b) in clips.iter().zip(&alone).zip(&together) {
        assert_eq!(a.text, b.text, "{}", clip.id);
        assert_eq!(a.segments.len(), b.segments.len(), "{}", clip.id);
        for (x, y) in a.segments.iter().zip(&b.segments) {
            assert_eq!((x.start, x.end, &x.tokens), (y.start, y.end, &y.tokens));
            assert!((x.avg_logprob - y.avg_logprob).abs() < 1e-4, "{}", clip.id);
            assert!(
                (x.no_speech_prob - y.no_speech_prob).abs() < 1e-4,
                "{}",
                clip.id
            );
            assert_eq!(x.temperature, y.temperature);
        }
        assert_eq!(a.timings.tokens, b.timings.tokens, "{}", clip.id);
        assert_eq!(a.timings.batched_windows, 0);
    }
    // Every first window was decoded in a batch (of 7, 7 and 6 windows:
    // the empty and the failing recordings take a place each).
    let batched: Vec<usize> = together.iter().map(|t| t.timings.batched_windows).collect();
    assert_eq!(batched, vec![1; clips.len()]);
    // Every clip's progress reached its end.
    let heard = heard.into_inner();
    for (i, s) in samples.iter().enumerate() {
        let at = i + usize::from(i >= 3) + usize::from(i >= 10);
        let seconds = s.len() as f64 / 16_000.0;
        assert!(
            (heard[at] - seconds).abs() < 0.05,
            "clip {i}: {} of {seconds}",
            heard[at]
        );
    }
}
