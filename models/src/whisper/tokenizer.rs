//! Whisper's byte-level BPE with its special tokens, read from a model
//! folder's `tokenizer.json` through the `tokenizers` crate.

use std::path::Path;

/// Ids of the control tokens the decoder needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub transcribe: u32,
    pub translate: u32,
    pub no_timestamps: u32,
    /// The first of the `<|0.00|>`, `<|0.02|>`, … timestamp tokens.
    pub timestamp_begin: u32,
    /// `<|nospeech|>` (`<|nocaptions|>` in older vocabularies), when present.
    pub no_speech: Option<u32>,
}

pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    pub special: SpecialTokens,
}

impl WhisperTokenizer {
    pub fn load(path: &Path) -> Result<WhisperTokenizer, String> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| format!("{}: no special token {token}", path.display()))
        };
        let no_timestamps = id("<|notimestamps|>")?;
        let special = SpecialTokens {
            eot: id("<|endoftext|>")?,
            sot: id("<|startoftranscript|>")?,
            transcribe: id("<|transcribe|>")?,
            translate: id("<|translate|>")?,
            no_timestamps,
            // Many tokenizer.json files omit the timestamp tokens; in every
            // Whisper vocabulary they start right after <|notimestamps|>.
            timestamp_begin: inner.token_to_id("<|0.00|>").unwrap_or(no_timestamps + 1),
            no_speech: inner
                .token_to_id("<|nospeech|>")
                .or_else(|| inner.token_to_id("<|nocaptions|>")),
        };
        Ok(WhisperTokenizer { inner, special })
    }

    /// The id of a token given by its text, e.g. `<|startofprev|>`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Text of `tokens`, control and timestamp tokens left out.
    pub fn decode(&self, tokens: &[u32]) -> Result<String, String> {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        self.inner.decode(&text, false).map_err(|e| e.to_string())
    }
}
