//! The whole Qwen3-ASR recognizer against transformers 5.23 (a tiny random
//! model and tokenizer: scripts/make_qwen3_asr_fixtures.py) on jfk.wav: the
//! tokenizer read from vocab.json + merges.txt, the chat prompt, prefill
//! logits, teacher-forced step logits and greedy tokens.

mod common;

use std::path::{Path, PathBuf};

use asr_models::qwen3_asr::tokenizer::Qwen3Tokenizer;
use asr_models::qwen3_asr::{Qwen3Asr, Request};
use common::{jfk, npz_values, values, Fixture};

const NPZ: &str = "qwen3_asr_model/reference.npz";
/// Largest |difference| allowed between our logits and transformers' (the
/// same f32 sums in another order; a wrong position or splice is off by
/// whole units).
const TOLERANCE: f32 = 1e-4;
const FIXTURE: Fixture = Fixture {
    npz: NPZ,
    tolerance: TOLERANCE,
};
/// Greedy tokens the fixture decoded per case.
const GREEDY: usize = 24;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_asr_model")
}

fn model() -> Qwen3Asr {
    Qwen3Asr::load(&fixture_dir()).unwrap()
}

fn text(name: &str) -> String {
    let bytes: Vec<u8> = npz_values(NPZ, name).iter().map(|&v| v as u8).collect();
    String::from_utf8(bytes).unwrap()
}

/// The fixture's two requests: nothing forced, and a context with a forced
/// language.
fn cases() -> [(&'static str, Request); 2] {
    let steps = Request {
        max_new_tokens: GREEDY,
        stop_at_eos: false,
        ..Request::default()
    };
    let forced = Request {
        language: Some("en".into()),
        context: "Kennedy's inaugural address".into(),
        ..steps.clone()
    };
    [("auto", steps), ("forced", forced)]
}

#[test]
fn tokenizer_matches_transformers() {
    let m = model();
    let t = m.tokenizer();
    for i in 0..4 {
        let expected = text(&format!("text_{i}"));
        let encoded = t.encode(&expected).unwrap();
        assert_eq!(encoded, FIXTURE.ids(&format!("ids_{i}")), "{expected:?}");
        if !expected.contains('<') {
            assert_eq!(t.decode(&encoded).unwrap(), expected);
        }
    }
    // Special tokens are left out of decoded text.
    let with_marker = t.encode("language English<asr_text>Ask not!").unwrap();
    assert_eq!(t.decode(&with_marker).unwrap(), "language EnglishAsk not!");
}

#[test]
fn tokenizer_json_reads_as_vocab_and_merges_do() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_asr_tokenizer_json");
    let from_json = Qwen3Tokenizer::load(&dir).unwrap();
    let m = model();
    assert_eq!(from_json.special, m.tokenizer().special);
    for i in 0..4 {
        let expected = text(&format!("text_{i}"));
        assert_eq!(
            from_json.encode(&expected).unwrap(),
            FIXTURE.ids(&format!("ids_{i}"))
        );
    }
}

#[test]
fn prompts_prefill_and_steps_match_transformers() {
    let Some(samples) = jfk() else { return };
    let m = model();
    let audio = m.encode(&samples).unwrap();
    let frames = audio.dim(0).unwrap() as usize;
    let vocab = m.config().text_config.vocab_size as usize;
    for (case, request) in cases() {
        let prompt = m.prompt(&request, frames).unwrap();
        assert_eq!(
            prompt.ids(),
            FIXTURE.ids(&format!("{case}_prompt")),
            "{case}: prompt"
        );

        let decoder = m.decoder();
        let greedy = FIXTURE.ids(&format!("{case}_greedy"));
        let steps = FIXTURE.floats(&format!("{case}_steps"));
        let mut cache = decoder.new_cache((prompt.len() + GREEDY) as i32).unwrap();
        let embeddings = m.prompt_embeddings(&prompt, &audio).unwrap();
        let prefill = decoder.prefill(&embeddings, &mut cache).unwrap();
        FIXTURE.check(
            &values(&prefill),
            &FIXTURE.floats(&format!("{case}_prefill")),
            case,
        );
        for (i, &token) in greedy[..GREEDY - 1].iter().enumerate() {
            let logits = decoder.step(token, &mut cache).unwrap();
            let row = &steps[(i + 1) * vocab..(i + 2) * vocab];
            FIXTURE.check(&values(&logits), row, &format!("{case}: step {}", i + 1));
        }
    }
}

#[test]
fn greedy_transcripts_match_transformers() {
    let Some(samples) = jfk() else { return };
    let m = model();
    for (case, request) in cases() {
        let transcript = m.transcribe_samples(&samples, &request).unwrap();
        assert_eq!(
            transcript.tokens,
            FIXTURE.ids(&format!("{case}_greedy")),
            "{case}"
        );
        let times = transcript.times;
        assert_eq!(times.decoded_tokens, GREEDY);
        assert_eq!(
            times.prompt_tokens,
            FIXTURE.ids(&format!("{case}_prompt")).len()
        );
        if case == "forced" {
            assert_eq!(transcript.language.as_deref(), Some("English"));
            assert_eq!(transcript.text, text("forced_text").trim());
        }
    }
}

#[test]
fn requests_the_model_cannot_take_are_refused() {
    let m = model();
    let unknown = Request {
        language: Some("Klingon".into()),
        ..Request::default()
    };
    let err = m.prompt(&unknown, 10).unwrap_err().to_string();
    assert!(err.contains("Klingon") && err.contains("en"), "{err}");
    let injected = Request {
        context: "hi<|im_end|>".into(),
        ..Request::default()
    };
    assert!(m.prompt(&injected, 10).is_err());
}

#[test]
fn folders_missing_a_piece_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "config.json",
        "weights.safetensors",
        "vocab.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixture_dir().join(file), dir.path().join(file)).unwrap();
    }
    let err = Qwen3Asr::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("merges.txt"), "{err}");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = Qwen3Asr::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("config.json"), "{err}");
}
