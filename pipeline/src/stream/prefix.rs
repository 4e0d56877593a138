//! The policy of recognizers that time no words but continue a given text
//! (Qwen3-ASR): each hypothesis re-transcribes the buffer with the words
//! already final in it forced as the reply's prefix ("prefix rollback":
//! the words after them are decoded afresh each time), and a word becomes
//! final when two consecutive hypotheses agree on it. When the buffer
//! outgrows [`StreamOptions::max_buffer`] it is cut at its quietest 100 ms
//! near the end: the audio before is transcribed for good and leaves the
//! buffer, its text the context of what follows.
//!
//! A hypothesis is the recognizer's [`Recognizer::hypothesis`] (Qwen3-ASR
//! encodes only the audio after the encoder windows it kept from the last
//! one). Word times are estimates: a word is timed at the end of the audio
//! of the hypothesis that first held it.

use super::agreement::{agreed_prefix, normalized, TimedWord};
use super::{Buffer, Policy, StreamOptions, Update, RATE};
use crate::config::decode::DecodeOptions;
use crate::stages::audio::quietest_cut;
use crate::stages::transcribe::{Recognizer, TranscribeError};

/// The longest context carried over a cut, in characters.
const CONTEXT_CHARS: usize = 200;
/// How far before `max_buffer` (seconds) a cut is looked for.
const CUT_SEARCH: f64 = 5.0;

pub(crate) struct PrefixPolicy {
    max_buffer: f64,
    max_new_tokens: usize,
    /// The language forced, or named by the first hypothesis (a prefix
    /// needs it).
    language: Option<String>,
    /// The final words of the buffer: the next hypothesis's prefix.
    fixed: Vec<TimedWord>,
    /// The last hypothesis's words after them.
    pending: Vec<TimedWord>,
    /// Final text before the buffer.
    context: String,
}

impl PrefixPolicy {
    pub fn new(options: &StreamOptions) -> Self {
        PrefixPolicy {
            max_buffer: options.max_buffer,
            max_new_tokens: options.max_new_tokens,
            language: None,
            fixed: Vec::new(),
            pending: Vec::new(),
            context: String::new(),
        }
    }

    /// The words a hypothesis of `buffer` adds after the fixed ones, at
    /// most `max_new_tokens` tokens of them when given.
    fn transcribe(
        &mut self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
        max_new_tokens: Option<usize>,
    ) -> Result<Vec<TimedWord>, TranscribeError> {
        let mut options = decode.clone();
        options.max_new_tokens = max_new_tokens.or(options.max_new_tokens);
        if options.language.is_none() {
            options.language = self.language.clone();
        }
        let prefix = super::join_words(&self.fixed);
        let forced = options.language.is_some() && !prefix.is_empty();
        if forced {
            options.prefix = Some(prefix.clone());
        }
        if !self.context.is_empty() {
            let own = options.initial_prompt.take().unwrap_or_default();
            options.initial_prompt = Some(format!("{own}\n{}", self.context).trim().to_string());
        }
        let transcript = recognizer.hypothesis(buffer.samples, &options)?;
        if self.language.is_none() {
            self.language = transcript.language.clone();
        }
        let mut words = words_of(&transcript.text, buffer.end());
        // The fixed words are the reply's start when they were forced; when
        // they were not (no language yet), the same count is skipped.
        let skip = if forced && transcript.text.trim_start().starts_with(prefix.as_str()) {
            words_of(&prefix, 0.0).len()
        } else {
            self.fixed.len()
        };
        Ok(words.split_off(skip.min(words.len())))
    }
}

impl Policy for PrefixPolicy {
    fn hypothesis(
        &mut self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
    ) -> Result<Update, TranscribeError> {
        if buffer.duration() > self.max_buffer {
            let aim = (self.max_buffer * RATE) as usize;
            let search = (CUT_SEARCH * RATE) as usize;
            let cut = quietest_cut(buffer.samples, aim - search..aim);
            let head = Buffer {
                samples: &buffer.samples[..cut],
                start: buffer.start,
            };
            let finals = self.flush(recognizer, decode, head)?;
            return Ok(Update {
                finals,
                partial: Vec::new(),
                keep_from: head.end(),
            });
        }
        let words = self.transcribe(recognizer, decode, buffer, Some(self.max_new_tokens))?;
        let agreed = agreed_prefix(&self.pending, &words);
        let finals: Vec<TimedWord> = self.pending.drain(..agreed).collect();
        self.pending = words[agreed..].to_vec();
        self.fixed.extend(finals.iter().cloned());
        Ok(Update {
            finals,
            partial: self.pending.clone(),
            keep_from: buffer.start,
        })
    }

    /// Makes every word of a last hypothesis of `buffer` final and starts
    /// afresh after it.
    fn flush(
        &mut self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
    ) -> Result<Vec<TimedWord>, TranscribeError> {
        let finals = if buffer.transcribable() {
            let mut words = self.transcribe(recognizer, decode, buffer, None)?;
            // Words heard before keep the time they were first heard.
            for (word, old) in words.iter_mut().zip(&self.pending) {
                if normalized(&word.text) == normalized(&old.text) {
                    word.start = old.start;
                    word.end = old.end;
                }
            }
            words
        } else {
            std::mem::take(&mut self.pending)
        };
        let all = [std::mem::take(&mut self.fixed), finals.clone()].concat();
        let text = format!("{} {}", self.context, super::join_words(&all));
        self.context = tail(text.trim(), CONTEXT_CHARS);
        self.pending.clear();
        Ok(finals)
    }

    fn timed(&self) -> bool {
        false
    }
}

/// The words of `text`, all timed at `heard`: runs of letters between
/// spaces, and each character of a script written without spaces (CJK)
/// on its own, attached to what precedes it.
fn words_of(text: &str, heard: f64) -> Vec<TimedWord> {
    let mut words: Vec<TimedWord> = Vec::new();
    let mut spaced = true;
    for c in text.chars() {
        if c.is_whitespace() {
            spaced = true;
            continue;
        }
        let own = unspaced_script(c);
        let continues = !spaced
            && !own
            && words
                .last()
                .is_some_and(|w| !w.text.ends_with(unspaced_script));
        if continues {
            words.last_mut().expect("a word to continue").text.push(c);
        } else {
            let mut word = TimedWord::new(c.to_string(), heard, heard);
            word.attached = !spaced;
            words.push(word);
        }
        spaced = false;
    }
    words
}

/// Han, kana and similar scripts, whose words are not separated by spaces.
fn unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F | 0x0E00..=0x0E7F)
}

/// The last `chars` characters of `text` at most, from a word start.
fn tail(text: &str, chars: usize) -> String {
    let count = text.chars().count();
    if count <= chars {
        return text.to_string();
    }
    let cut: String = text.chars().skip(count - chars).collect();
    match cut.find(' ') {
        Some(space) => cut[space + 1..].to_string(),
        None => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(words: &[TimedWord]) -> Vec<(&str, bool)> {
        words
            .iter()
            .map(|w| (w.text.as_str(), w.attached))
            .collect()
    }

    #[test]
    fn words_split_at_spaces_and_between_unspaced_characters() {
        assert_eq!(
            texts(&words_of(" And so, my fellow", 1.0)),
            [
                ("And", false),
                ("so,", false),
                ("my", false),
                ("fellow", false)
            ]
        );
        assert_eq!(
            texts(&words_of("我们 go 今天", 1.0)),
            [
                ("我", false),
                ("们", true),
                ("go", false),
                ("今", false),
                ("天", true)
            ]
        );
        let words = words_of("我们 go 今天", 1.0);
        assert_eq!(super::super::join_words(&words), "我们 go 今天");
    }

    #[test]
    fn context_tails_start_at_a_word() {
        assert_eq!(tail("ask not what your country", 14), "your country");
        assert_eq!(tail("short", 14), "short");
    }
}
