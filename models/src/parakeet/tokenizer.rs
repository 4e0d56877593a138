//! Token ids to text with a Parakeet model's SentencePiece vocabulary:
//! `▁` marks a word's start, `<0xNN>` pieces are UTF-8 bytes, and (as NeMo
//! and parakeet-mlx print it) no space precedes `.`, `!` or `?`.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::{DecoderWrapper, Tokenizer};

use super::{DecodedToken, ParakeetConfig};

/// SentencePiece's word marker.
const WORD_MARKER: char = '▁';

/// A word of a decode: its text and the encoder frames its tokens span.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    pub text: String,
    pub start_frame: usize,
    /// One past the last frame of its last token.
    pub end_frame: usize,
    /// Its tokens' positions in the decode.
    pub tokens: std::ops::Range<usize>,
}

pub struct ParakeetTokenizer {
    tokenizer: Tokenizer,
    /// Whether each piece begins a word.
    word_starts: Vec<bool>,
}

impl ParakeetTokenizer {
    /// The tokenizer of the config's vocabulary (blank, its last id plus
    /// one, has no text).
    pub fn from_config(config: &ParakeetConfig) -> Result<ParakeetTokenizer, String> {
        Self::new(config.vocabulary())
    }

    pub fn new(vocabulary: &[String]) -> Result<ParakeetTokenizer, String> {
        let pieces = vocabulary.iter().map(|p| (p.clone(), 0.0)).collect();
        let unknown = vocabulary.iter().position(|p| p == "<unk>");
        let model = Unigram::from(pieces, unknown, true)
            .map_err(|e| format!("the vocabulary is not a SentencePiece vocabulary: {e}"))?;
        let decoder = || -> tokenizers::Result<DecoderWrapper> {
            Ok(Sequence::new(vec![
                Replace::new(WORD_MARKER.to_string(), " ")?.into(),
                ByteFallback::new().into(),
                Fuse::new().into(),
                Replace::new(ReplacePattern::Regex(r"\s(?=[.!?])".into()), "")?.into(),
            ])
            .into())
        };
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_decoder(Some(decoder().map_err(|e| e.to_string())?));
        Ok(ParakeetTokenizer {
            tokenizer,
            word_starts: vocabulary
                .iter()
                .map(|p| p.starts_with(WORD_MARKER))
                .collect(),
        })
    }

    /// The text of `ids`, trimmed; ids outside the vocabulary (blank) are
    /// skipped. (These decoders do not fail on any pieces;
    /// were they to, the text would be empty.)
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer
            .decode(ids, false)
            .map(|text| text.trim().to_string())
            .unwrap_or_default()
    }

    /// Whether token `id` begins a word (its piece starts with `▁`).
    pub fn starts_word(&self, id: u32) -> bool {
        self.word_starts.get(id as usize).copied().unwrap_or(false)
    }

    /// The words of a decode: a word begins at the first token and at each
    /// token whose piece starts with `▁`; punctuation and other pieces join
    /// the word before. Words without text (a lone `▁`) are left out.
    pub fn words(&self, tokens: &[DecodedToken]) -> Vec<Word> {
        let mut bounds: Vec<usize> = (0..tokens.len())
            .filter(|&i| i == 0 || self.starts_word(tokens[i].id))
            .collect();
        bounds.push(tokens.len());
        bounds
            .windows(2)
            .filter_map(|w| {
                let part = &tokens[w[0]..w[1]];
                let ids: Vec<u32> = part.iter().map(|t| t.id).collect();
                let text = self.decode(&ids);
                (!text.is_empty()).then(|| Word {
                    text,
                    start_frame: part[0].start_frame,
                    end_frame: part
                        .iter()
                        .map(|t| t.start_frame + t.frames)
                        .max()
                        .unwrap_or(part[0].start_frame),
                    tokens: w[0]..w[1],
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> ParakeetTokenizer {
        let pieces = [
            "<unk>", "▁the", "▁caf", "<0xC3>", "<0xA9>", ".", "<0x0A>", "▁is", "▁", "!", "s",
        ];
        ParakeetTokenizer::new(&pieces.map(String::from)).unwrap()
    }

    fn token(id: u32, start_frame: usize, frames: usize) -> DecodedToken {
        DecodedToken {
            id,
            start_frame,
            frames,
            confidence: 1.0,
        }
    }

    #[test]
    fn pieces_bytes_and_punctuation() {
        let t = tokenizer();
        assert_eq!(t.decode(&[1, 2, 3, 4, 5]), "the café.");
        assert_eq!(t.decode(&[1, 6, 7, 8, 9]), "the\n is!");
        assert_eq!(t.decode(&[8, 8, 1, 10, 11]), "thes");
        assert_eq!(t.decode(&[]), "");
    }

    #[test]
    fn words_span_their_tokens() {
        let t = tokenizer();
        let tokens = [
            token(10, 0, 1),
            token(1, 2, 2),
            token(2, 5, 1),
            token(3, 6, 0),
            token(4, 6, 2),
            token(5, 9, 1),
            token(8, 11, 1),
        ];
        let words: Vec<_> = t
            .words(&tokens)
            .into_iter()
            .map(|w| (w.text, w.start_frame, w.end_frame, w.tokens))
            .collect();
        assert_eq!(
            words,
            vec![
                ("s".to_string(), 0, 1, 0..1),
                ("the".to_string(), 2, 4, 1..2),
                ("café.".to_string(), 5, 10, 2..6),
            ]
        );
    }
}
