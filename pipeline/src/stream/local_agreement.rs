//! The policy of recognizers that time their words (Whisper, Parakeet):
//! each hypothesis re-transcribes the buffer with word times, and
//! [`LocalAgreement`] confirms the words two consecutive hypotheses share.
//! The buffer is cut after the last segment whose words are all final once
//! it is longer than [`StreamOptions::trim`]; earlier final text prompts
//! the recognizer, when it takes a prompt, so that the text reads on
//! across cuts.

use std::collections::VecDeque;

use super::agreement::{LocalAgreement, TimedWord};
use super::{Buffer, Policy, StreamOptions, Update};
use crate::config::decode::DecodeOptions;
use crate::stages::transcribe::{Recognizer, TranscribeError};

/// The longest prompt, in characters (whisper_streaming's 200).
const PROMPT_CHARS: usize = 200;
/// A buffer shorter than this (seconds) is not transcribed.
const SHORTEST: f64 = 0.2;

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

    /// The hypothesis for `buffer`: its words, timed from the start of the
    /// stream, and the end of each segment that has words.
    fn transcribe(
        &self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
    ) -> Result<(Vec<TimedWord>, Vec<f64>), TranscribeError> {
        let mut options = decode.clone();
        options.word_timestamps = true;
        if let Some(prompt) = self.prompt_before(buffer.start) {
            options.initial_prompt = Some(prompt);
        }
        let audio = Box::new(std::iter::once(Ok(buffer.samples.to_vec())));
        let transcript = recognizer.transcribe(audio, &options, &|_| {})?;
        let mut words = Vec::new();
        let mut segment_ends = Vec::new();
        for segment in &transcript.segments {
            let before = words.len();
            words.extend(segment.words.iter().filter_map(|w| {
                let text = w.word.word.trim();
                (!text.is_empty()).then(|| {
                    TimedWord::new(text, buffer.start + w.word.start, buffer.start + w.word.end)
                })
            }));
            if words.len() > before {
                segment_ends.push(buffer.start + segment.end);
            }
        }
        Ok((words, segment_ends))
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
        if buffer.duration() < SHORTEST {
            return Ok(Update {
                partial: self.agreement.pending().to_vec(),
                keep_from: buffer.start,
                ..Update::default()
            });
        }
        let (words, segment_ends) = self.transcribe(recognizer, decode, buffer)?;
        let mut finals = self.agreement.insert(words);
        let mut keep_from = buffer.start;
        if buffer.duration() > self.trim {
            // The end of the last segment all of whose words are final
            // (never the hypothesis's last segment: its end may move).
            let final_end = self.agreement.final_end();
            let complete = &segment_ends[..segment_ends.len().saturating_sub(1)];
            if let Some(&end) = complete.iter().rev().find(|&&end| end <= final_end + 1e-6) {
                keep_from = end;
            }
        }
        if buffer.duration() > self.max_buffer && keep_from <= buffer.start {
            // No segment ended in final words: cut after the last final
            // word, or, with none in the buffer, make the hypothesis final.
            if self.agreement.final_end() <= buffer.start {
                finals.extend(self.agreement.flush());
            }
            keep_from = self.agreement.final_end();
            if keep_from <= buffer.start {
                // Nothing was heard in a whole buffer: keep its last step.
                keep_from = buffer.end() - self.trim / 2.0;
            }
        }
        self.remember(&finals);
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
        if buffer.duration() >= SHORTEST {
            let (words, _) = self.transcribe(recognizer, decode, buffer)?;
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
