//! Qwen2's byte-level BPE, read through the `tokenizers` crate from either
//! file set a Qwen checkpoint ships: `tokenizer.json`, or `vocab.json` +
//! `merges.txt` with the special tokens in `tokenizer_config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Qwen2's pre-tokenizer: contractions, letter runs with one leading
/// non-letter, single digits, punctuation runs, newlines, spaces.
const PRETOKENIZE: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The special tokens the prompt and the output format use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub end_of_text: i32,
    pub im_start: i32,
    pub im_end: i32,
    pub audio_start: i32,
    pub audio_end: i32,
    pub audio_pad: i32,
    pub asr_text: i32,
}

pub struct Qwen3Tokenizer {
    tokenizer: Tokenizer,
    pub special: SpecialTokens,
}

/// `tokenizer_config.json`, as far as the special tokens go.
#[derive(Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    added_tokens_decoder: BTreeMap<String, AddedTokenEntry>,
}

#[derive(Deserialize)]
struct AddedTokenEntry {
    content: String,
    #[serde(default)]
    special: bool,
}

impl Qwen3Tokenizer {
    /// Reads the tokenizer files in `dir`; errors name the file.
    pub fn load(dir: &Path) -> Result<Qwen3Tokenizer, String> {
        let json = dir.join("tokenizer.json");
        let tokenizer = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| format!("{}: {e}", json.display()))?
        } else {
            from_vocab_and_merges(dir)?
        };
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .map(|id| id as i32)
                .ok_or_else(|| format!("{}: the tokenizer has no {token}", dir.display()))
        };
        let special = SpecialTokens {
            end_of_text: id("<|endoftext|>")?,
            im_start: id("<|im_start|>")?,
            im_end: id("<|im_end|>")?,
            audio_start: id("<|audio_start|>")?,
            audio_end: id("<|audio_end|>")?,
            audio_pad: id("<|audio_pad|>")?,
            asr_text: id("<asr_text>")?,
        };
        Ok(Qwen3Tokenizer { tokenizer, special })
    }

    /// The ids of `text`, special tokens written in it included.
    pub fn encode(&self, text: &str) -> Result<Vec<i32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| format!("cannot tokenize {text:?}: {e}"))?;
        Ok(encoding.get_ids().iter().map(|&id| id as i32).collect())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[i32]) -> Result<String, String> {
        let ids: Vec<u32> = ids.iter().map(|&id| id as u32).collect();
        self.tokenizer
            .decode(&ids, true)
            .map_err(|e| format!("cannot decode tokens: {e}"))
    }

    /// The ids that end a reply.
    pub fn end_of_reply(&self) -> [i32; 2] {
        [self.special.im_end, self.special.end_of_text]
    }
}

/// Qwen2's tokenizer from `vocab.json` and `merges.txt`, with the special
/// tokens of `tokenizer_config.json` at the ids it gives them.
fn from_vocab_and_merges(dir: &Path) -> Result<Tokenizer, String> {
    let path = |name: &str| {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{}: no tokenizer.json, and no {name} beside it",
                dir.display()
            ))
        }
    };
    let (vocab, merges) = (path("vocab.json")?, path("merges.txt")?);
    let config_path = path("tokenizer_config.json")?;
    let bpe = BPE::from_file(&vocab.display().to_string(), &merges.display().to_string())
        .build()
        .map_err(|e| format!("{} / {}: {e}", vocab.display(), merges.display()))?;
    let split = Split::new(
        SplitPattern::Regex(PRETOKENIZE.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(NFC))
        .with_pre_tokenizer(Some(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])))
        .with_decoder(Some(ByteLevel::default()));

    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config: TokenizerConfig = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a tokenizer config: {e}", config_path.display()))?;
    let mut added = Vec::with_capacity(config.added_tokens_decoder.len());
    for (id, entry) in &config.added_tokens_decoder {
        let id: u32 = id
            .parse()
            .map_err(|_| format!("{}: token id {id:?}", config_path.display()))?;
        added.push((id, entry));
    }
    added.sort_by_key(|(id, _)| *id);
    for (id, entry) in added {
        let token = AddedToken::from(entry.content.clone(), entry.special).normalized(false);
        tokenizer.add_tokens(&[token]);
        if tokenizer.token_to_id(&entry.content) != Some(id) {
            return Err(format!(
                "{}: {} should have id {id}, but the vocabulary leaves it elsewhere",
                config_path.display(),
                entry.content
            ));
        }
    }
    Ok(tokenizer)
}
