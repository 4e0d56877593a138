//! Decoding options on real audio with tiny.en: each one changes the
//! transcript the way it promises.
//!
//! - `hotwords` (and `initial_prompt`) spell a name the model otherwise
//!   mishears: LJ001-0007's "Gudenburg" becomes the reference's "Gutenberg".
//! - `prefix` forces the start of the first window; the model continues it.
//! - `suppress_tokens` keeps the named tokens out of the transcript (the
//!   model then spells the word from other pieces).
//! - `best_of` draws at temperature > 0 are reproducible from the seed.

use std::path::{Path, PathBuf};

use asr_pipeline::stages::audio::load_audio;
use asr_pipeline::wer::word_errors;
use asr_pipeline::{DecodeOptions, Transcript, WhisperTranscriber};

fn setup() -> Option<(PathBuf, WhisperTranscriber)> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if !data.is_dir() {
        eprintln!("skipped: ../shared/data not present");
        return None;
    }
    match WhisperTranscriber::load("tiny.en") {
        Ok(t) => Some((data, t)),
        Err(e) => {
            eprintln!("skipped: cannot load tiny.en from the registry: {e}");
            None
        }
    }
}

fn greedy() -> DecodeOptions {
    DecodeOptions {
        temperature: vec![0.0],
        ..DecodeOptions::default()
    }
}

#[test]
fn options_steer_the_transcript() {
    let Some((data, transcriber)) = setup() else {
        return;
    };
    let gutenberg = load_audio(&data.join("ljspeech/wavs/LJ001-0007.wav")).unwrap();
    let run = |samples: &[f32], options: &DecodeOptions| {
        transcriber.transcribe(samples, options, &|_| {}).unwrap()
    };
    let plain = run(&gutenberg, &greedy()).text;
    assert!(plain.contains("Gudenburg"), "{plain}");
    for options in [
        DecodeOptions {
            hotwords: Some("Gutenberg".into()),
            ..greedy()
        },
        DecodeOptions {
            initial_prompt: Some("Gutenberg".into()),
            ..greedy()
        },
    ] {
        let text = run(&gutenberg, &options).text;
        assert!(
            text.contains("Gutenberg") && !text.contains("Gudenburg"),
            "{text}"
        );
    }

    let jfk = load_audio(&data.join("audio/jfk.wav")).unwrap();
    let reference = "And so my fellow Americans ask not what your country can do for you \
                     ask what you can do for your country";
    let prefixed = run(
        &jfk,
        &DecodeOptions {
            prefix: Some("And so, my fellow Americans,".into()),
            ..greedy()
        },
    );
    assert!(
        prefixed
            .text
            .trim()
            .starts_with("And so, my fellow Americans, ask not"),
        "{}",
        prefixed.text
    );
    assert_eq!(
        word_errors(reference, &prefixed.text).errors,
        0,
        "{}",
        prefixed.text
    );
    assert_eq!(prefixed.segments[0].start, 0.0);

    let country = transcriber.tokenizer().encode(" country");
    assert_eq!(country.len(), 1);
    let suppressed = run(
        &jfk,
        &DecodeOptions {
            suppress_tokens: vec![-1, i64::from(country[0])],
            ..greedy()
        },
    );
    let tokens = |t: &asr_pipeline::Transcript| -> Vec<u32> {
        t.segments.iter().flat_map(|s| s.tokens.clone()).collect()
    };
    assert!(tokens(&run(&jfk, &greedy())).contains(&country[0]));
    // The word may still be spelled with other tokens, never with this one.
    assert!(
        !tokens(&suppressed).contains(&country[0]),
        "{}",
        suppressed.text
    );
}

#[test]
fn best_of_draws_are_reproducible_from_the_seed() {
    let Some((data, transcriber)) = setup() else {
        return;
    };
    let jfk = load_audio(&data.join("audio/jfk.wav")).unwrap();
    let options = |seed| DecodeOptions {
        temperature: vec![0.6],
        best_of: Some(3),
        seed,
        ..DecodeOptions::default()
    };
    let run = |o: &DecodeOptions| transcriber.transcribe(&jfk, o, &|_| {}).unwrap();
    let first = run(&options(7));
    let tokens = |t: &Transcript| {
        t.segments
            .iter()
            .map(|s| s.tokens.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(tokens(&run(&options(7))), tokens(&first));
    assert!(first.segments.iter().all(|s| s.temperature == 0.6));
    let reference = "And so my fellow Americans ask not what your country can do for you \
                     ask what you can do for your country";
    // The best of three draws at 0.6 still hears the speech.
    assert!(
        word_errors(reference, &first.text).rate() < 0.3,
        "{}",
        first.text
    );
}

#[test]
fn an_english_only_model_refuses_unknown_languages_and_ignores_known_ones() {
    let Some((_, transcriber)) = setup() else {
        return;
    };
    let silence = vec![0.0f32; 16_000];
    let with = |language: &str| {
        let options = DecodeOptions {
            language: Some(language.into()),
            ..greedy()
        };
        transcriber.transcribe(&silence, &options, &|_| {})
    };
    let err = with("xx").unwrap_err().to_string();
    assert!(
        err.starts_with("decode.language: \"xx\" is not one of the model's languages"),
        "{err}"
    );
    for known in ["en", "de"] {
        let transcript = with(known).unwrap();
        assert_eq!(transcript.language.as_deref(), Some("en"), "{known}");
    }
}
