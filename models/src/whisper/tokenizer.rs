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

    /// The language tokens (`<|en|>`, `<|zh|>`, …) as (code, id), in
    /// vocabulary order: they sit between `<|startoftranscript|>` and
    /// `<|translate|>`.
    pub fn languages(&self) -> Vec<(String, u32)> {
        (self.special.sot + 1..self.special.translate)
            .filter_map(|id| {
                let token = self.inner.id_to_token(id)?;
                let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
                Some((code.to_string(), id))
            })
            .collect()
    }

    /// The prompt that starts a window: `<|startoftranscript|>`, then for
    /// multilingual models the language and the task.
    pub fn sot_sequence(&self, language: Option<u32>, translate: bool) -> Vec<u32> {
        let s = &self.special;
        let mut out = vec![s.sot];
        if let Some(language) = language {
            out.push(language);
            out.push(if translate { s.translate } else { s.transcribe });
        }
        out
    }

    /// Words of `tokens` as openai-whisper's `split_to_word_tokens` cuts
    /// them, each with its tokens: pieces that decode to whole characters,
    /// joined into words unless a piece starts with a space, is punctuation
    /// or is a special token (`spaces`: the language separates words with
    /// spaces; otherwise every piece is a word).
    pub fn split_to_word_tokens(
        &self,
        tokens: &[u32],
        spaces: bool,
    ) -> Result<Vec<(String, Vec<u32>)>, String> {
        let pieces = self.split_on_unicode(tokens)?;
        if !spaces {
            return Ok(pieces);
        }
        let mut words: Vec<(String, Vec<u32>)> = Vec::new();
        for (piece, piece_tokens) in pieces {
            let starts_word = piece_tokens[0] >= self.special.eot
                || piece.starts_with(' ')
                || is_punctuation(piece.trim())
                || words.is_empty();
            match words.last_mut() {
                Some((word, word_tokens)) if !starts_word => {
                    word.push_str(&piece);
                    word_tokens.extend(piece_tokens);
                }
                _ => words.push((piece, piece_tokens)),
            }
        }
        Ok(words)
    }

    /// Consecutive tokens grouped until they decode to complete characters
    /// (a multi-byte character may span tokens).
    fn split_on_unicode(&self, tokens: &[u32]) -> Result<Vec<(String, Vec<u32>)>, String> {
        let decode = |t: &[u32]| self.inner.decode(t, false).map_err(|e| e.to_string());
        let full: Vec<char> = decode(tokens)?.chars().collect();
        let (mut out, mut current, mut offset) = (Vec::new(), Vec::new(), 0);
        for &token in tokens {
            current.push(token);
            let decoded = decode(&current)?;
            let complete = match decoded.chars().position(|c| c == '\u{fffd}') {
                None => true,
                Some(at) => full.get(offset + at) == Some(&'\u{fffd}'),
            };
            if complete {
                offset += decoded.chars().count();
                out.push((decoded, std::mem::take(&mut current)));
            }
        }
        Ok(out)
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

impl WhisperTokenizer {
    /// Tokens of `text` without special tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    /// Tokens of symbols and speaker-tag punctuation that openai-whisper
    /// never samples (its `non_speech_tokens`): each symbol alone or after a
    /// space when it is a single token, and any token starting a musical sign.
    pub fn non_speech_tokens(&self) -> Vec<u32> {
        let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
            .chars()
            .map(String::from)
            .collect();
        symbols.extend(
            "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
                .split(' ')
                .map(String::from),
        );
        let music: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
        let mut out: Vec<u32> = [" -", " '"]
            .iter()
            .filter_map(|s| self.encode(s).first().copied())
            .collect();
        for symbol in symbols.iter().chain(&music) {
            let is_music = music.contains(symbol);
            for tokens in [self.encode(symbol), self.encode(&format!(" {symbol}"))] {
                if tokens.len() == 1 || (is_music && !tokens.is_empty()) {
                    out.push(tokens[0]);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// openai-whisper's default suppression (`suppress_tokens="-1"`,
    /// `suppress_blank=True`).
    pub fn default_suppression(&self) -> super::Suppression {
        self.suppression(&[-1], true)
    }

    /// Token suppression as openai-whisper derives it from its options:
    /// `suppress_tokens` (ids; `-1` adds the non-speech symbols) plus the
    /// control tokens that never belong in a transcript, and with
    /// `suppress_blank` no blank or end-of-text as the first token.
    pub fn suppression(&self, suppress_tokens: &[i64], suppress_blank: bool) -> super::Suppression {
        let s = &self.special;
        let mut always: Vec<u32> = suppress_tokens
            .iter()
            .filter_map(|&t| u32::try_from(t).ok())
            .collect();
        if suppress_tokens.contains(&-1) {
            always.extend(self.non_speech_tokens());
        }
        always.extend([s.transcribe, s.translate, s.sot]);
        always.extend(
            ["<|startofprev|>", "<|startoflm|>"]
                .iter()
                .filter_map(|t| self.token_id(t)),
        );
        always.extend(s.no_speech);
        always.sort_unstable();
        always.dedup();
        let mut at_begin = Vec::new();
        if suppress_blank {
            at_begin = self.encode(" ");
            at_begin.push(s.eot);
        }
        super::Suppression { always, at_begin }
    }
}

/// `s in string.punctuation` as Python means it: `s` is a run of that
/// string (the empty string included).
fn is_punctuation(s: &str) -> bool {
    const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    PUNCTUATION.contains(s)
}
