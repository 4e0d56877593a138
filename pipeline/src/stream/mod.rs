//! Live transcription: audio arrives as it is spoken, and text comes back
//! as partial hypotheses that may still change and final words that never
//! do.
//!
//! A [`Stream`] keeps a buffer of the audio not yet transcribed for good
//! and, every [`StreamOptions::step`] seconds of new audio, asks the
//! pipeline's recognizer for a hypothesis of the whole buffer. How a
//! hypothesis becomes final text is the recognizer's streaming policy
//! ([`crate::stages::transcribe::Streaming`]): [`local_agreement`] for
//! recognizers that time their words (Whisper, Parakeet), [`prefix`] for
//! those that can be made to continue a given text (Qwen3-ASR). Both drop
//! audio from the buffer once its words are final, so memory stays bounded
//! however long the stream. With `[vad]` on, the end of each stretch of
//! speech makes its words final at once, and silence is never transcribed.

pub mod agreement;
mod local_agreement;
mod prefix;
pub mod replay;
pub mod source;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::decode::DecodeOptions;
use crate::stages::audio::{refuse_non_finite, SAMPLE_RATE};
use crate::stages::transcribe::{Recognizer, Streaming, TranscribeError};
use crate::stages::vad::VadStage;
use crate::{Pipeline, PipelineError};
pub use agreement::TimedWord;

const RATE: f64 = SAMPLE_RATE as f64;
/// A buffer shorter than this (seconds) is not transcribed: too little
/// for a word.
const SHORTEST: f64 = 0.2;

/// The `[stream]` table of a config: when hypotheses are made and how much
/// audio the buffer may hold.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamOptions {
    /// Seconds of new audio between two hypotheses. Shorter gives final
    /// words sooner and costs more computation (each hypothesis
    /// re-transcribes the buffer).
    pub step: f64,
    /// Once the buffer is longer than this (seconds), it is cut after the
    /// last segment whose words are all final.
    pub trim: f64,
    /// The longest the buffer gets (seconds): beyond it the words the
    /// buffer holds are made final, whether hypotheses agreed or not. Under
    /// Whisper's 30 s window.
    pub max_buffer: f64,
    /// The most tokens a hypothesis adds after the final words, for
    /// recognizers streamed by prefix rollback (Qwen3-ASR): what a step of
    /// speech and the words not yet final need, and a bound on a
    /// hypothesis that runs on.
    pub max_new_tokens: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            step: 1.0,
            trim: 15.0,
            max_buffer: 25.0,
            max_new_tokens: 32,
        }
    }
}

impl StreamOptions {
    /// Every problem with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.step >= 0.1 && self.step <= 10.0) {
            problems.push(format!(
                "stream.step = {}: between 0.1 and 10 seconds",
                self.step
            ));
        }
        if !(self.trim >= 2.0 * self.step.max(1.0) && self.trim < self.max_buffer) {
            problems.push(format!(
                "stream.trim = {}: at least twice stream.step (and 2 s), below stream.max_buffer",
                self.trim
            ));
        }
        if self.max_buffer.is_nan() || self.max_buffer > 29.0 {
            problems.push(format!(
                "stream.max_buffer = {}: at most 29 seconds (a Whisper window is 30)",
                self.max_buffer
            ));
        }
        if self.max_new_tokens == 0 {
            problems.push("stream.max_new_tokens: at least 1".into());
        }
        problems
    }
}

/// Whether an event's text may still change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The current guess for the audio after the final text; the next
    /// partial replaces it.
    Partial,
    /// Text appended for good.
    Final,
}

/// What a stream reports: a partial hypothesis or final text, timed in
/// seconds from the start of the stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub text: String,
    pub start: f64,
    pub end: f64,
    /// The timed words, for recognizers that time them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<TimedWord>>,
}

/// The audio a hypothesis is made of: the buffer, from `start` seconds into
/// the stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Buffer<'a> {
    pub samples: &'a [f32],
    pub start: f64,
}

impl Buffer<'_> {
    pub fn end(&self) -> f64 {
        self.start + self.samples.len() as f64 / RATE
    }

    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / RATE
    }

    /// Whether it is long enough to hold a word.
    pub fn transcribable(&self) -> bool {
        self.duration() >= SHORTEST
    }
}

/// What a policy made of a hypothesis.
#[derive(Debug, Default)]
pub(crate) struct Update {
    /// Words that became final, in order.
    pub finals: Vec<TimedWord>,
    /// The rest of the hypothesis.
    pub partial: Vec<TimedWord>,
    /// Audio before this time (seconds into the stream) is no longer needed.
    pub keep_from: f64,
}

/// How hypotheses become final text, for one kind of recognizer.
pub(crate) trait Policy: Send {
    /// A hypothesis of `buffer` (a [`Buffer::transcribable`] one): the
    /// words it made final and the rest.
    fn hypothesis(
        &mut self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
    ) -> Result<Update, TranscribeError>;

    /// The end of a stretch of speech or of the stream: a last hypothesis
    /// of `buffer`, all of whose words become final.
    fn flush(
        &mut self,
        recognizer: &dyn Recognizer,
        decode: &DecodeOptions,
        buffer: Buffer<'_>,
    ) -> Result<Vec<TimedWord>, TranscribeError>;

    /// Whether word times are the recognizer's (else they are estimates
    /// and events carry no words).
    fn timed(&self) -> bool;
}

/// A live transcription: push 16 kHz mono samples as they arrive, receive
/// events; [`Stream::finish`] at the end makes the rest final. `Send`, so
/// it can be fed from another thread than the one that made it; streams of
/// one pipeline take turns on its model.
///
/// ```no_run
/// use std::sync::Arc;
/// use asr_pipeline::Pipeline;
/// use asr_pipeline::stream::{EventKind, StreamOptions};
///
/// let pipeline = Arc::new(Pipeline::builder().model("tiny.en").build()?);
/// let mut stream = pipeline.stream(StreamOptions::default())?;
/// let microphone_blocks: Vec<Vec<f32>> = Vec::new();
/// for block in microphone_blocks {
///     for event in stream.push(&block)? {
///         if event.kind == EventKind::Final {
///             println!("{}", event.text);
///         }
///     }
/// }
/// for event in stream.finish()? {
///     println!("{}", event.text);
/// }
/// # Ok::<(), asr_pipeline::PipelineError>(())
/// ```
pub struct Stream {
    pipeline: Arc<Pipeline>,
    options: StreamOptions,
    policy: Box<dyn Policy>,
    /// Samples from stream sample `buffer_start` on, not yet final.
    buffer: Vec<f32>,
    buffer_start: usize,
    /// Samples pushed.
    received: usize,
    /// `received` at the last hypothesis.
    heard: usize,
    vad: Option<VadStage>,
    /// The last partial's text, so that an unchanged one is not repeated.
    partial: String,
    finished: bool,
}

impl Stream {
    pub(crate) fn new(
        pipeline: Arc<Pipeline>,
        options: StreamOptions,
    ) -> Result<Stream, PipelineError> {
        let problems = options.problems();
        if !problems.is_empty() {
            return Err(PipelineError::Invalid(problems));
        }
        let policy: Box<dyn Policy> = match pipeline.lock().streaming() {
            Streaming::TimedWords { prompt } => {
                Box::new(local_agreement::LocalAgreementPolicy::new(&options, prompt))
            }
            Streaming::Prefix => Box::new(prefix::PrefixPolicy::new(&options)),
        };
        let vad = pipeline.vad_options().map(VadStage::new).transpose()?;
        Ok(Stream {
            pipeline,
            options,
            policy,
            buffer: Vec::new(),
            buffer_start: 0,
            received: 0,
            heard: 0,
            vad,
            partial: String::new(),
            finished: false,
        })
    }

    /// Seconds of audio pushed so far.
    pub fn seconds(&self) -> f64 {
        self.received as f64 / RATE
    }

    /// Seconds of audio held: never much more than
    /// [`StreamOptions::max_buffer`], however long the stream.
    pub fn buffered_seconds(&self) -> f64 {
        self.buffer.len() as f64 / RATE
    }

    /// Takes the next samples; when a step's worth of new audio has
    /// arrived, makes a hypothesis of the buffer and returns what changed.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<StreamEvent>, PipelineError> {
        if self.finished {
            return Err(PipelineError::Invalid(vec![
                "the stream was finished: start a new one".into(),
            ]));
        }
        let start = self.received as f64 / RATE;
        refuse_non_finite(Path::new("samples"), samples, start, SAMPLE_RATE)?;
        self.received += samples.len();
        self.buffer.extend_from_slice(samples);
        let mut events = Vec::new();
        if let Some(vad) = &mut self.vad {
            let regions = vad.push(samples)?;
            let silent_until = vad.retain_from();
            for region in regions {
                self.end_of_speech(region.end, &mut events)?;
            }
            // Audio that voice activity ruled out is never transcribed; a
            // hypothesis waits for a step of audio that may be speech.
            if self.policy_idle() && silent_until > self.buffer_start {
                self.keep_from(silent_until);
                self.heard = self.heard.max(silent_until);
            }
        }
        let transcribable = Buffer {
            samples: &self.buffer,
            start: 0.0,
        }
        .transcribable();
        if self.received - self.heard >= self.step_samples() && transcribable {
            self.heard = self.received;
            let all = self.buffer.len();
            let update = self.with_recognizer(all, |policy, recognizer, decode, buffer| {
                policy.hypothesis(recognizer, decode, buffer)
            })?;
            self.report(update, &mut events);
        }
        Ok(events)
    }

    /// Ends the stream (end of input, Ctrl-C): everything heard becomes
    /// final.
    pub fn finish(&mut self) -> Result<Vec<StreamEvent>, PipelineError> {
        let mut events = Vec::new();
        if self.finished {
            return Ok(events);
        }
        self.finished = true;
        if let Some(vad) = &mut self.vad {
            for region in vad.finish()? {
                self.end_of_speech(region.end, &mut events)?;
            }
            if self.policy_idle() {
                self.buffer.clear();
            }
        }
        let end = self.received;
        self.end_of_speech(end, &mut events)?;
        Ok(events)
    }

    fn step_samples(&self) -> usize {
        (self.options.step * RATE).round() as usize
    }

    /// No words are waiting to be confirmed.
    fn policy_idle(&self) -> bool {
        self.partial.is_empty()
    }

    /// Speech ended at sample `end`: the buffer up to there is transcribed
    /// for good and dropped.
    fn end_of_speech(
        &mut self,
        end: usize,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), PipelineError> {
        if end <= self.buffer_start {
            return Ok(());
        }
        let upto = (end - self.buffer_start).min(self.buffer.len());
        let finals = self.with_recognizer(upto, |policy, recognizer, decode, buffer| {
            policy.flush(recognizer, decode, buffer)
        })?;
        let update = Update {
            finals,
            partial: Vec::new(),
            keep_from: (self.buffer_start + upto) as f64 / RATE,
        };
        self.report(update, events);
        Ok(())
    }

    /// Runs the policy on the buffer's first `upto` samples.
    fn with_recognizer<T>(
        &mut self,
        upto: usize,
        run: impl FnOnce(
            &mut dyn Policy,
            &dyn Recognizer,
            &DecodeOptions,
            Buffer<'_>,
        ) -> Result<T, TranscribeError>,
    ) -> Result<T, PipelineError> {
        let buffer = Buffer {
            samples: &self.buffer[..upto],
            start: self.buffer_start as f64 / RATE,
        };
        let recognizer = self.pipeline.lock();
        Ok(run(
            &mut *self.policy,
            &**recognizer,
            self.pipeline.decode_options(),
            buffer,
        )?)
    }

    /// Drops the buffer's samples before stream sample `from`.
    fn keep_from(&mut self, from: usize) {
        let drop = from
            .saturating_sub(self.buffer_start)
            .min(self.buffer.len());
        self.buffer.drain(..drop);
        self.buffer_start += drop;
    }

    fn report(&mut self, update: Update, events: &mut Vec<StreamEvent>) {
        self.keep_from((update.keep_from * RATE).round() as usize);
        let timed = self.policy.timed();
        if let Some(event) = event(EventKind::Final, update.finals, timed) {
            events.push(event);
        }
        let partial = event(EventKind::Partial, update.partial, timed);
        let text = partial.as_ref().map(|p| p.text.clone()).unwrap_or_default();
        if text != self.partial {
            self.partial = text;
            let now = self.received as f64 / RATE;
            events.push(partial.unwrap_or(StreamEvent {
                kind: EventKind::Partial,
                text: String::new(),
                start: now,
                end: now,
                words: None,
            }));
        }
    }
}

/// The event of `words`, if there are any.
fn event(kind: EventKind, words: Vec<TimedWord>, timed: bool) -> Option<StreamEvent> {
    let (first, last) = (words.first()?, words.last()?);
    Some(StreamEvent {
        kind,
        text: join_words(&words),
        start: first.start,
        end: last.end,
        words: timed.then_some(words),
    })
}

/// Words as text: separated by spaces, but for those a recognizer wrote
/// without one (characters of a language written without spaces).
fn join_words(words: &[TimedWord]) -> String {
    let mut text = String::new();
    for w in words {
        if !text.is_empty() && !w.attached {
            text.push(' ');
        }
        text.push_str(&w.text);
    }
    text
}

impl Pipeline {
    /// A live transcription with this pipeline's model, decoding settings
    /// and voice activity detection.
    pub fn stream(self: &Arc<Self>, options: StreamOptions) -> Result<Stream, PipelineError> {
        Stream::new(Arc::clone(self), options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_can_move_to_another_thread() {
        fn movable<T: Send>() {}
        movable::<Stream>();
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let bad = StreamOptions {
            step: 0.0,
            trim: 40.0,
            max_buffer: 35.0,
            max_new_tokens: 32,
        };
        let problems = bad.problems().join("; ");
        assert!(problems.contains("stream.step = 0"), "{problems}");
        assert!(problems.contains("stream.max_buffer = 35"), "{problems}");
        assert!(StreamOptions::default().problems().is_empty());
    }
}
