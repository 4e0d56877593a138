//! Whisper's multilingual tokenizer as a tokenizer.json built from
//! openai-whisper's `multilingual.tiktoken` (asr_converters::tiktoken): the
//! same token ids as openai-whisper's tiktoken tokenizer on texts in several
//! scripts (fixture written by scripts/make_tokenizer_fixtures.py), the same
//! special tokens and non-speech list, and — in the `base` registry model,
//! whose folder carries it — the suppression lists CTranslate2 stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_converters::tiktoken;
use asr_models::whisper::WhisperTokenizer;

#[derive(serde::Deserialize)]
struct Fixture {
    special: BTreeMap<String, u32>,
    languages: BTreeMap<String, u32>,
    n_languages: usize,
    non_speech_tokens: Vec<u32>,
    texts: Vec<Text>,
}

#[derive(serde::Deserialize)]
struct Text {
    text: String,
    ids: Vec<u32>,
}

fn fixture() -> Fixture {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokens-multilingual.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check(path: &Path, expected: &Fixture) {
    let raw = tokenizers::Tokenizer::from_file(path).unwrap();
    for case in &expected.texts {
        let ids = raw.encode(case.text.as_str(), false).unwrap();
        assert_eq!(ids.get_ids(), case.ids, "{:?}", case.text);
    }
    let tok = WhisperTokenizer::load(path).unwrap();
    for case in &expected.texts {
        assert_eq!(tok.decode(&case.ids).unwrap(), case.text);
    }
    let s = &tok.special;
    let ours = BTreeMap::from([
        ("eot".to_string(), s.eot),
        ("sot".to_string(), s.sot),
        ("transcribe".to_string(), s.transcribe),
        ("translate".to_string(), s.translate),
        (
            "sot_prev".to_string(),
            tok.token_id("<|startofprev|>").unwrap(),
        ),
        ("no_speech".to_string(), s.no_speech.unwrap()),
        ("no_timestamps".to_string(), s.no_timestamps),
        ("timestamp_begin".to_string(), s.timestamp_begin),
    ]);
    assert_eq!(ours, expected.special);
    // The language tokens fill the ids between <|startoftranscript|> and
    // <|translate|>.
    assert_eq!((s.translate - s.sot - 1) as usize, expected.n_languages);
    for (code, id) in &expected.languages {
        assert_eq!(
            tok.token_id(&format!("<|{code}|>")),
            Some(*id),
            "<|{code}|>"
        );
    }
    assert_eq!(tok.token_id("<|30.00|>"), Some(s.timestamp_begin + 1500));
    assert_eq!(tok.non_speech_tokens(), expected.non_speech_tokens);
}

#[test]
fn built_from_multilingual_tiktoken_it_encodes_like_openai_whisper() {
    let ranks = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/whisper-assets/multilingual.tiktoken");
    let Ok(text) = std::fs::read_to_string(&ranks) else {
        eprintln!("skipped: {} not present", ranks.display());
        return;
    };
    let ranks = tiktoken::parse_ranks(&text).unwrap();
    let json = tiktoken::whisper_tokenizer_json(&ranks, 99).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    check(&path, &fixture());
}

fn base_ct2() -> Option<PathBuf> {
    asr_converters::registry::fetch("base")
        .map_err(|e| eprintln!("skipped: cannot fetch base: {e}"))
        .ok()
}

#[test]
fn the_base_registry_model_carries_it() {
    let Some(dir) = base_ct2() else { return };
    check(&dir.join("tokenizer.json"), &fixture());
    // openai-whisper's default suppression, computed from the tokenizer,
    // equals the lists CTranslate2 stored in base's config.json.
    let tok = WhisperTokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        config[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    let suppression = tok.default_suppression();
    let mut always = suppression.always.clone();
    always.sort_unstable();
    assert_eq!(always, ids("suppress_ids"));
    assert_eq!(suppression.at_begin, ids("suppress_ids_begin"));
    let lang_ids: Vec<u32> = (tok.special.sot + 1..tok.special.translate).collect();
    assert_eq!(lang_ids, ids("lang_ids"));
}
