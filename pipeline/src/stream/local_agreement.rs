//! The policy of recognizers that time their words (Whisper, Parakeet):
//! each hypothesis re-transcribes the buffer with word times, and
//! [`LocalAgreement`] confirms the words two consecutive hypotheses share.
//! The buffer is cut after the last final word that ends a sentence once
//! it is longer than [`StreamOptions::trim`]; earlier final text prompts
//! the recognizer, when it takes a prompt, so that the text reads on
//! across cuts.
//!
//! A hypothesis is the recognizer's one-pass [`Recognizer::hypothesis`];
//! the last of a stretch of speech decodes as the config says.

use std::collections::VecDeque;

use super::agreement::{LocalAgreement, TimedWord};
use super::{Buffer, Policy, StreamOptions, Update};
use crate::config::decode::DecodeOptions;
use crate::stages::transcribe::{Recognizer, TranscribeError};

/// The longest prompt, in characters (whisper_streaming's 200).
const PROMPT_CHARS: usize = 200;
/// What ends a sentence, where the buffer may be cut.
const SENTENCE_ENDS: &[char] = &['.', '?', '!', '。', '？', '！'];

pub(crate) struct LocalAgreementPolicy {
    agreement: LocalAgreement,
    trim: f64,
    max_buffer: f64,
    prompt: bool,
    /// The last final words, for the prompt.
    recent: VecDeque<TimedWord>,
}

impl LocalAgreementPolicy {
    pub fn new(options: &StreamOptions, prompt: bool) -> Self {
        LocalAgreementPolicy {
            agreement: LocalAgreement::new(),
            trim: options.trim,
            max_buffer: options.max_buffer,
            prompt,
            recent: VecDeque::new(),
        }
    }

    /// The hypothesis for `buffer`, its words timed from the start of the
    /// stream; `one_pass` for a hypothesis that another will follow.
    fn transcribe(
        &self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
        one_pass: bool,
    ) -> Result<Vec<TimedWord>, TranscribeError> {
        let mut options = decode.clone();
        options.word_timestamps = true;
        if let Some(prompt) = self.prompt_before(buffer.start) {
            options.initial_prompt = Some(prompt);
        }
        let transcript = if one_pass {
            recognizer.hypothesis(buffer.samples, &options)?
        } else {
            let audio = Box::new(std::iter::once(Ok(buffer.samples.to_vec())));
            recognizer.transcribe(audio, &options, &|_| {})?
        };
        let t = &transcript.timings;
        tracing::debug!(
            buffer_start = buffer.start,
            seconds = buffer.duration(),
            transcribe = t.transcribe,
            encoder = t.encoder,
            decoder = t.decoder,
            passes = t.decoder_passes,
            tokens = t.tokens,
            word_timestamps = t.word_timestamps,
            "hypothesis"
        );
        let words = transcript.segments.iter().flat_map(|s| &s.words);
        Ok(words
            .filter_map(|w| {
                let text = w.word.word.trim();
                (!text.is_empty()).then(|| {
                    TimedWord::new(text, buffer.start + w.word.start, buffer.start + w.word.end)
                })
            })
            .collect())
    }

    /// The final text before `start`, its last [`PROMPT_CHARS`] at most
    /// (until there is some, the config's own prompt stays).
    fn prompt_before(&self, start: f64) -> Option<String> {
        if !self.prompt {
            return None;
        }
        let mut tail: Vec<&str> = Vec::new();
        let mut chars = 0;
        for w in self.recent.iter().rev().filter(|w| w.end <= start) {
            chars += w.text.chars().count() + 1;
            if chars > PROMPT_CHARS {
                break;
            }
            tail.push(&w.text);
        }
        tail.reverse();
        (!tail.is_empty()).then(|| tail.join(" "))
    }

    fn remember(&mut self, finals: &[TimedWord]) {
        self.recent.extend(finals.iter().cloned());
        // Words are at least one character and a space.
        let excess = self.recent.len().saturating_sub(PROMPT_CHARS / 2);
        self.recent.drain(..excess);
    }
}

impl Policy for LocalAgreementPolicy {
    fn hypothesis(
        &mut self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
    ) -> Result<Update, TranscribeError> {
        let words = self.transcribe(recognizer, decode, buffer, true)?;
        let mut finals = self.agreement.insert(words);
        self.remember(&finals);
        let mut keep_from = buffer.start;
        if buffer.duration() > self.trim {
            let sentence_end = self
                .recent
                .iter()
                .rev()
                .take_while(|w| w.end > buffer.start)
                .find(|w| w.text.ends_with(SENTENCE_ENDS));
            if let Some(word) = sentence_end {
                keep_from = word.end;
            }
        }
        if buffer.end() - keep_from > self.max_buffer {
            // No final sentence ends early enough: cut after the last final
            // word, and when that leaves more than `trim`, the hypothesis
            // becomes final and the buffer keeps `trim` at most.
            keep_from = keep_from.max(self.agreement.final_end());
            if buffer.end() - keep_from > self.trim {
                let flushed = self.agreement.flush();
                self.remember(&flushed);
                finals.extend(flushed);
                keep_from = self.agreement.final_end().max(buffer.end() - self.trim);
            }
        }
        Ok(Update {
            finals,
            partial: self.agreement.pending().to_vec(),
            keep_from,
        })
    }

    fn flush(
        &mut self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
    ) -> Result<Vec<TimedWord>, TranscribeError> {
        let mut finals = Vec::new();
        if buffer.transcribable() {
            let words = self.transcribe(recognizer, decode, buffer, false)?;
            finals = self.agreement.insert(words);
        }
        finals.extend(self.agreement.flush());
        self.remember(&finals);
        Ok(finals)
    }

    fn timed(&self) -> bool {
        true
    }
}
