//! Only the speech of a block stream, in bounded memory.

use std::collections::VecDeque;

use super::{SpeechRegion, SpeechTimeline, VadError, VadOptions, VadStage, RATE};
use crate::stages::audio::BLOCK_SAMPLES;

/// The speech of a block stream: wraps blocks of 16 kHz mono samples (an
/// [`crate::stages::audio::AudioStream`], say) and yields only what lies in speech
/// regions, end to end, in blocks of at most [`BLOCK_SAMPLES`]; it holds no
/// more than about `max_speech_s` of audio whatever the stream's length.
///
/// Errors of the inner stream are passed on (and end the stream); a
/// detector error ends it too and is returned by [`Self::into_timeline`].
///
/// ```no_run
/// # use asr_pipeline::stages::{audio::AudioStream, vad::{SpeechBlocks, VadOptions}};
/// # use asr_pipeline::{DecodeOptions, WhisperTranscriber};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let transcriber = WhisperTranscriber::load("tiny.en")?;
/// let stream = AudioStream::open("talk.wav".as_ref())?;
/// let mut speech = SpeechBlocks::new(stream, &VadOptions::default())?;
/// let mut transcript =
///     transcriber.transcribe_blocks(speech.by_ref(), &DecodeOptions::default(), &|_| {})?;
/// speech.into_timeline()?.map_transcript(&mut transcript);
/// # Ok(())
/// # }
/// ```
pub struct SpeechBlocks<I> {
    blocks: I,
    stage: VadStage,
    /// Samples from `buffer_start` on.
    buffer: Vec<f32>,
    buffer_start: usize,
    /// Regions not yet handed out completely.
    ready: VecDeque<SpeechRegion>,
    /// Next sample of `ready[0]` to hand out.
    cursor: usize,
    regions: Vec<SpeechRegion>,
    input_done: bool,
    error: Option<VadError>,
}

impl<I, E> SpeechBlocks<I>
where
    I: Iterator<Item = Result<Vec<f32>, E>>,
{
    pub fn new(blocks: I, opts: &VadOptions) -> Result<Self, VadError> {
        Ok(SpeechBlocks::with_stage(blocks, VadStage::new(opts)?))
    }

    /// With a stage of any detector and settings ([`VadStage::with_parts`]).
    pub fn with_stage(blocks: I, stage: VadStage) -> Self {
        SpeechBlocks {
            blocks,
            stage,
            buffer: Vec::new(),
            buffer_start: 0,
            ready: VecDeque::new(),
            cursor: 0,
            regions: Vec::new(),
            input_done: false,
            error: None,
        }
    }

    /// The regions handed out so far.
    pub fn regions(&self) -> &[SpeechRegion] {
        &self.regions
    }

    /// Samples of the inner stream read so far.
    pub fn samples_seen(&self) -> usize {
        self.stage.samples_seen()
    }

    /// The timeline of the speech handed out (all of it once the iterator
    /// has ended), with the speech padding as join tolerance, or the
    /// detector's error.
    pub fn into_timeline(self) -> Result<SpeechTimeline, VadError> {
        let pad = self.stage.pad() as f64 / RATE as f64;
        match self.error {
            Some(e) => Err(e),
            None => Ok(SpeechTimeline::new(self.regions).with_join_tolerance(pad)),
        }
    }

    fn trim(&mut self) {
        let mut keep = self.stage.retain_from();
        if let Some(r) = self.ready.front() {
            keep = keep.min(self.cursor.max(r.start));
        }
        if keep > self.buffer_start {
            let drop = (keep - self.buffer_start).min(self.buffer.len());
            self.buffer.drain(..drop);
            self.buffer_start += drop;
        }
    }
}

impl<I, E> Iterator for SpeechBlocks<I>
where
    I: Iterator<Item = Result<Vec<f32>, E>>,
{
    type Item = Result<Vec<f32>, E>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(&r) = self.ready.front() {
                let from = self.cursor.max(r.start);
                let to = r.end.min(from + BLOCK_SAMPLES);
                let lo = from - self.buffer_start;
                let hi = (to - self.buffer_start).min(self.buffer.len());
                let block = self.buffer[lo.min(hi)..hi].to_vec();
                self.cursor = to;
                if to >= r.end {
                    self.ready.pop_front();
                    self.regions.push(r);
                }
                self.trim();
                if !block.is_empty() {
                    return Some(Ok(block));
                }
                continue;
            }
            if self.input_done {
                return None;
            }
            let found = match self.blocks.next() {
                Some(Ok(block)) => {
                    self.buffer.extend_from_slice(&block);
                    self.stage.push(&block)
                }
                Some(Err(e)) => {
                    self.input_done = true;
                    return Some(Err(e));
                }
                None => {
                    self.input_done = true;
                    self.stage.finish()
                }
            };
            match found {
                Ok(regions) => self.ready.extend(regions),
                Err(e) => {
                    self.error = Some(e);
                    self.input_done = true;
                    self.ready.clear();
                    return None;
                }
            }
            self.trim();
        }
    }
}
