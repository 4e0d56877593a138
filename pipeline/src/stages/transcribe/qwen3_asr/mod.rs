//! Qwen3-ASR over a whole recording: the audio cut into segments of about
//! [`SEGMENT_SECONDS`] at the quietest moment near each boundary (as the
//! reference's long-audio path cuts), each segment recognized on its own
//! (log-mel, audio encoder, chat prompt, greedy decoding), one transcript
//! segment per recognized segment.
//!
//! The model gives no word times; `[align]` (a wav2vec2 aligner) times the
//! words afterwards.

mod family;

pub use family::Qwen3AsrFamily;

use std::sync::Mutex;
use std::time::Instant;

use asr_models::qwen3_asr::prompt::language_code;
use asr_models::qwen3_asr::{EncoderCache, Qwen3Asr, Request};
use asr_models::Quantize;

use crate::model_source::{resolve_model, QWEN3_ASR};
use crate::stages::audio::{quietest_cut, AudioBlocks};
use crate::stages::transcribe::whisper::compression_ratio;
use crate::stages::transcribe::TranscribeError;
use crate::transcript::{Progress, Segment, Timings, Transcript};

/// Samples per second of the model's input.
const SAMPLE_RATE: usize = 16_000;
/// Seconds a segment aims at: enough context for the decoder, a bounded
/// prompt and KV cache.
pub const SEGMENT_SECONDS: usize = 30;
/// How far (seconds) either side of a segment's aimed end its cut may move
/// to find silence.
pub const SEARCH_SECONDS: usize = 5;
/// Samples per 10 ms frame, the unit of [`Segment::seek`].
const HOP: usize = 160;

/// A loaded Qwen3-ASR model ready to transcribe any number of recordings.
pub struct Qwen3AsrTranscriber {
    model: Qwen3Asr,
    /// The encoder's windows of a live stream's buffer, kept from one
    /// hypothesis to the next.
    stream_windows: Mutex<EncoderCache>,
}

impl Qwen3AsrTranscriber {
    /// The model `spec` names (an MLX folder, a Qwen or transformers
    /// checkpoint folder, or a Hub repo), converted once with
    /// `quantize.weights`, its quantized matrices multiplying activations as
    /// `quantize.activations` says.
    pub fn load_with(
        spec: &str,
        quantize: Quantize,
    ) -> Result<Qwen3AsrTranscriber, TranscribeError> {
        let dir = resolve_model(spec, quantize.weights, QWEN3_ASR)?;
        let model = Qwen3Asr::load_with(&dir, quantize.activations)?;
        Ok(Qwen3AsrTranscriber {
            model,
            stream_windows: Mutex::new(EncoderCache::default()),
        })
    }

    pub fn model(&self) -> &Qwen3Asr {
        &self.model
    }

    /// A live stream's hypothesis of its buffer `samples` (one clip): the
    /// encoder's complete 8 s windows are kept for the next hypothesis,
    /// which encodes only the audio after them while the buffer keeps its
    /// start.
    pub fn transcribe_hypothesis(
        &self,
        samples: &[f32],
        request: &Request,
    ) -> Result<Transcript, TranscribeError> {
        let started = Instant::now();
        let mut windows = self
            .stream_windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let reply = self
            .model
            .transcribe_cached(samples, request, &mut windows)?;
        let mut timings = Timings::default();
        add_times(&mut timings, &reply.times);
        timings.windows = 1;
        timings.audio = seconds(samples.len());
        timings.transcribe = started.elapsed().as_secs_f64();
        let segments: Vec<Segment> = segment_of(&reply, 0, 0, samples.len())
            .into_iter()
            .collect();
        Ok(Transcript {
            text: segments.iter().map(|s| s.text.as_str()).collect(),
            segments,
            language: language_of(&reply),
            timings,
            ..Transcript::default()
        })
    }

    /// Transcribes 16 kHz mono audio arriving in consecutive blocks, holding
    /// at most one segment and its search margin at a time.
    pub fn transcribe_blocks(
        &self,
        blocks: impl AudioBlocks,
        request: &Request,
        progress: &dyn Fn(Progress),
    ) -> Result<Transcript, TranscribeError> {
        let started = Instant::now();
        let (aim, search) = (SEGMENT_SECONDS * SAMPLE_RATE, SEARCH_SECONDS * SAMPLE_RATE);
        let mut timings = Timings::default();
        let mut segments: Vec<Segment> = Vec::new();
        let mut language: Option<String> = None;
        let mut buffer: Vec<f32> = Vec::with_capacity(aim + search);
        let mut buffer_start = 0usize;
        let mut seen = 0usize;
        let mut blocks = blocks.peekable();
        loop {
            if let Some(block) = blocks.next().transpose()? {
                seen += block.len();
                buffer.extend_from_slice(&block);
            }
            let done = blocks.peek().is_none();
            while buffer.len() >= aim + search || (done && !buffer.is_empty()) {
                let take = if buffer.len() >= aim + search {
                    quietest_cut(&buffer, aim - search..aim + search)
                } else {
                    buffer.len()
                };
                let reply = self.model.transcribe_samples(&buffer[..take], request)?;
                add_times(&mut timings, &reply.times);
                if language.is_none() {
                    language = language_of(&reply);
                }
                segments.extend(segment_of(&reply, segments.len(), buffer_start, take));
                timings.windows += 1;
                buffer.drain(..take);
                buffer_start += take;
                progress(Progress {
                    done: seconds(buffer_start),
                    total: None,
                });
            }
            if done {
                break;
            }
        }
        let audio = seconds(seen);
        progress(Progress {
            done: audio,
            total: Some(audio),
        });
        timings.audio = audio;
        timings.transcribe = started.elapsed().as_secs_f64();
        Ok(Transcript {
            text: segments.iter().map(|s| s.text.as_str()).collect(),
            segments,
            language,
            timings,
            ..Transcript::default()
        })
    }
}

/// The ISO code of the language a reply names (the name itself when it has
/// no code).
fn language_of(reply: &asr_models::qwen3_asr::Transcript) -> Option<String> {
    reply
        .language
        .as_deref()
        .map(|name| language_code(name).map_or_else(|| name.to_string(), str::to_string))
}

/// The segment of a reply to the `len` samples from sample `start`, if it
/// has text: timed by its audio, as the model times nothing finer.
fn segment_of(
    reply: &asr_models::qwen3_asr::Transcript,
    id: usize,
    start: usize,
    len: usize,
) -> Option<Segment> {
    if reply.text.is_empty() {
        return None;
    }
    let text = format!(" {}", reply.text);
    Some(Segment {
        id,
        seek: start / HOP,
        start: seconds(start),
        end: seconds(start + len),
        compression_ratio: compression_ratio(&text),
        text,
        tokens: reply.tokens.iter().map(|&t| t as u32).collect(),
        temperature: 0.0,
        avg_logprob: 0.0,
        no_speech_prob: 0.0,
        words: Vec::new(),
        speaker: None,
    })
}

/// The model's phases in the pipeline's stage times: the prefill is the
/// decoder's prompt pass, then per token the blocks, the vocabulary
/// projection and the pick.
fn add_times(timings: &mut Timings, times: &asr_models::qwen3_asr::PhaseTimes) {
    let secs = |d: std::time::Duration| d.as_secs_f64();
    timings.mel += secs(times.mel);
    timings.encoder += secs(times.encoder);
    timings.decoder_prompt += secs(times.prefill);
    timings.decoder_blocks += secs(times.blocks);
    timings.decoder_logits += secs(times.output_layer);
    timings.decoder_picking += secs(times.argmax);
    timings.decoder +=
        secs(times.prefill) + secs(times.blocks) + secs(times.output_layer) + secs(times.argmax);
    timings.decoder_passes += 1;
    timings.tokens += times.decoded_tokens;
}

fn seconds(samples: usize) -> f64 {
    samples as f64 / SAMPLE_RATE as f64
}
