//! Voice activity detection: which stretches of a 16 kHz mono recording hold
//! speech, and the bookkeeping that lets a model transcribe only those.
//!
//! The detector is WebRTC's (libfvad, through the `webrtc-vad` crate): a
//! Gaussian-mixture classifier over six sub-band energies that says, for
//! every 10, 20 or 30 ms frame, speech or not. Its raw decisions flicker, so
//! they go through the stages of [`VadOptions`], all measured in samples and
//! independent of the detector:
//!
//! 1. **smoothing** — the last `window_ms` of decisions: speech starts when
//!    at least `onset` of them are voiced and stops when at most `offset`
//!    are (hysteresis; a region runs from its first to its last voiced frame);
//! 2. **merging** — regions less than `min_silence_ms` apart become one;
//! 3. **dropping** — regions shorter than `min_speech_ms` are discarded;
//! 4. **padding** — `speech_pad_ms` of context on each side, clamped to the
//!    recording; where two padded regions would overlap the gap between them
//!    is split in the middle, so regions never overlap;
//! 5. **splitting** — a region longer than `max_speech_s` is cut into pieces
//!    of at most that length, each cut in the middle of the longest unvoiced
//!    run (else after the quietest frame) of the second half of the piece.
//!
//! [`detect_speech`] does this on a slice; [`VadStage`] does the same on
//! blocks as they arrive (identical regions whatever the block sizes), and
//! [`SpeechBlocks`] wraps a block iterator such as
//! [`crate::audio::AudioStream`] to yield only the speech, in bounded
//! memory. A [`SpeechTimeline`] maps times on the gathered speech back to
//! the recording; [`pack`] groups regions into ≤ 30 s batches (WhisperX).
//!
//! The smoothing and everything after it work on per-frame speech
//! probabilities from a [`FrameClassifier`], so a neural detector (Silero)
//! can be a second implementation of the same stage.
//!
//! ```
//! use asr_pipeline::vad::{detect_speech, SpeechTimeline, VadOptions};
//!
//! let samples = vec![0.0f32; 16_000 * 5]; // five seconds of silence
//! let regions = detect_speech(&samples, &VadOptions::default()).unwrap();
//! assert!(regions.is_empty());
//! let timeline = SpeechTimeline::new(regions);
//! assert!(timeline.gather(&samples).is_empty());
//! ```

use std::collections::VecDeque;

use asr_models::whisper::constants::SAMPLE_RATE;
use serde::{Deserialize, Serialize};

use crate::audio::BLOCK_SAMPLES;
use crate::output::Transcript;

const RATE: usize = SAMPLE_RATE as usize;

/// Samples per millisecond at [`SAMPLE_RATE`].
const PER_MS: usize = RATE / 1000;

/// The `[vad]` table of a run configuration.
///
/// Defaults: WebRTC mode 3 on 30 ms frames; speech starts when half of the
/// last 300 ms of frames are voiced and stops when at most 10 % are; regions
/// less than 1 s apart are merged, regions under 250 ms dropped, 300 ms of
/// padding kept on each side, and regions longer than 30 s (one Whisper
/// window) split.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadOptions {
    /// WebRTC aggressiveness, 0 (reports the most speech) to 3 (the least,
    /// the most confident; best against noise and music). Default 3.
    pub mode: u8,
    /// Frame length the detector decides on: 10, 20 or 30 ms. Default 30.
    pub frame_ms: u32,
    /// Smoothing window: how many milliseconds of recent frame decisions
    /// the onset and offset ratios count over (at least one frame; 0 means
    /// one frame, i.e. raw decisions). Default 300.
    pub window_ms: u32,
    /// Speech starts when the share of voiced frames in the window reaches
    /// this, in (0, 1]. Default 0.5.
    pub onset: f32,
    /// Speech stops when the share of voiced frames in the window falls to
    /// this, in [0, `onset`). Default 0.1.
    pub offset: f32,
    /// Context kept before and after every region, in ms (clamped to the
    /// recording, never overlapping a neighbour). Default 300.
    pub speech_pad_ms: u32,
    /// Regions shorter than this (before padding) are dropped, in ms.
    /// Default 250.
    pub min_speech_ms: u32,
    /// Regions separated by less than this are merged, in ms. Default 1000.
    pub min_silence_ms: u32,
    /// Regions longer than this (after padding) are split, in seconds; at
    /// least 1, `inf` for no limit. Default 30, so that every region fits
    /// one Whisper window.
    pub max_speech_s: f64,
    /// Pack consecutive regions into batches of at most 30 s of speech and
    /// transcribe each batch on its own, as WhisperX does (no prompt from
    /// one batch to the next; the whole recording is held in memory).
    /// Default false: the speech is transcribed as one stream.
    pub pack_into_windows: bool,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            mode: 3,
            frame_ms: 30,
            window_ms: 300,
            onset: 0.5,
            offset: 0.1,
            speech_pad_ms: 300,
            min_speech_ms: 250,
            min_silence_ms: 1000,
            max_speech_s: 30.0,
            pack_into_windows: false,
        }
    }
}

/// The longest smoothing window accepted, in ms.
const MAX_WINDOW_MS: u32 = 10_000;

impl VadOptions {
    /// Values that cannot work, each as `vad.<key>: <reason>`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.mode > 3 {
            out.push(format!(
                "vad.mode: {} is not one of 0, 1, 2, 3 (aggressiveness)",
                self.mode
            ));
        }
        if ![10, 20, 30].contains(&self.frame_ms) {
            out.push(format!(
                "vad.frame_ms: {} is not one of 10, 20, 30",
                self.frame_ms
            ));
        }
        if self.window_ms > MAX_WINDOW_MS {
            out.push(format!(
                "vad.window_ms: {} is above {MAX_WINDOW_MS}",
                self.window_ms
            ));
        }
        let onset_ok = self.onset > 0.0 && self.onset <= 1.0;
        if !onset_ok {
            out.push(format!("vad.onset: {} is not in (0, 1]", self.onset));
        }
        if !(self.offset >= 0.0 && self.offset < 1.0) {
            out.push(format!("vad.offset: {} is not in [0, 1)", self.offset));
        } else if onset_ok && self.offset >= self.onset {
            out.push(format!(
                "vad.offset: {} is not below vad.onset ({})",
                self.offset, self.onset
            ));
        }
        if self.max_speech_s.is_nan() || self.max_speech_s < 1.0 {
            out.push(format!(
                "vad.max_speech_s: {} is below 1 s (inf for no limit)",
                self.max_speech_s
            ));
        }
        out
    }

    fn check(&self) -> Result<(), VadError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VadError::Options(problems))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// Invalid [`VadOptions`], every problem listed.
    #[error("{}", .0.join("; "))]
    Options(Vec<String>),
    /// The frame classifier failed.
    #[error("voice activity detection: {0}")]
    Detector(String),
    /// Samples were pushed into a [`VadStage`] after `finish`.
    #[error("voice activity detection: samples after the end of the stream")]
    Finished,
}

/// A stretch of speech, in samples of the 16 kHz recording: `start`
/// inclusive, `end` exclusive.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SpeechRegion {
    pub start: usize,
    pub end: usize,
}

impl SpeechRegion {
    pub fn new(start: usize, end: usize) -> Self {
        SpeechRegion { start, end }
    }

    /// Its length in samples.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start in seconds.
    pub fn start_s(&self) -> f64 {
        self.start as f64 / RATE as f64
    }

    /// End in seconds.
    pub fn end_s(&self) -> f64 {
        self.end as f64 / RATE as f64
    }

    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.len() as f64 / RATE as f64
    }
}

/// Decides frame by frame how likely audio is speech: the part of voice
/// activity detection that differs between detectors. WebRTC's answers 0 or
/// 1; a neural detector answers a probability. Smoothing, merging, padding,
/// splitting and the timeline are shared ([`VadStage::with_classifier`]).
pub trait FrameClassifier: Send {
    /// Samples per frame at 16 kHz.
    fn frame_len(&self) -> usize;
    /// The speech probability of one frame of [`Self::frame_len`] samples
    /// in [-1, 1]; 0.5 and above counts as a voiced frame.
    fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError>;
}

/// WebRTC's detector (libfvad) at 16 kHz.
pub struct WebRtcClassifier {
    vad: webrtc_vad::Vad,
    frame_len: usize,
    pcm: Vec<i16>,
}

// SAFETY: a libfvad instance is one heap allocation that the C code reaches
// only through the pointer handed to it; the library keeps no global or
// thread-local state besides constant tables. `WebRtcClassifier` is not
// `Sync` and uses the instance through `&mut self` only, so moving it to
// another thread is sound.
unsafe impl Send for WebRtcClassifier {}

impl WebRtcClassifier {
    /// `mode` 0–3, `frame_ms` 10, 20 or 30.
    pub fn new(mode: u8, frame_ms: u32) -> Result<Self, VadError> {
        let mut problems = Vec::new();
        if mode > 3 {
            problems.push(format!("vad.mode: {mode} is not one of 0, 1, 2, 3"));
        }
        if ![10, 20, 30].contains(&frame_ms) {
            problems.push(format!("vad.frame_ms: {frame_ms} is not one of 10, 20, 30"));
        }
        if !problems.is_empty() {
            return Err(VadError::Options(problems));
        }
        use webrtc_vad::{SampleRate, Vad, VadMode};
        let mode = match mode {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        Ok(WebRtcClassifier {
            vad: Vad::new_with_rate_and_mode(SampleRate::Rate16kHz, mode),
            frame_len: frame_ms as usize * PER_MS,
            pcm: Vec::with_capacity(frame_ms as usize * PER_MS),
        })
    }
}

impl FrameClassifier for WebRtcClassifier {
    fn frame_len(&self) -> usize {
        self.frame_len
    }

    fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError> {
        if frame.len() != self.frame_len {
            return Err(VadError::Detector(format!(
                "frame of {} samples, expected {}",
                frame.len(),
                self.frame_len
            )));
        }
        self.pcm.clear();
        self.pcm.extend(
            frame
                .iter()
                .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        match self.vad.is_voice_segment(&self.pcm) {
            Ok(true) => Ok(1.0),
            Ok(false) => Ok(0.0),
            Err(()) => Err(VadError::Detector("libfvad refused the frame".into())),
        }
    }
}

/// Speech regions of 16 kHz mono `samples`, in order, disjoint.
pub fn detect_speech(samples: &[f32], opts: &VadOptions) -> Result<Vec<SpeechRegion>, VadError> {
    let mut stage = VadStage::new(opts)?;
    let mut regions = stage.push(samples)?;
    regions.extend(stage.finish()?);
    Ok(regions)
}

/// What the splitter remembers of a frame.
#[derive(Copy, Clone, Debug)]
struct FrameInfo {
    voiced: bool,
    /// Mean square of its samples.
    energy: f32,
}

/// The region being detected (merged, not yet padded), in samples.
#[derive(Copy, Clone, Debug)]
struct Current {
    start: usize,
    /// End of its last voiced frame so far.
    end: usize,
    /// Long enough to be kept: it is the [`Active`] region.
    kept: bool,
}

/// The kept region whose pieces are being handed out, in samples.
#[derive(Copy, Clone, Debug)]
struct Active {
    /// Start of the next piece (padding included).
    piece_start: usize,
    /// End of its last voiced frame so far.
    raw_end: usize,
}

/// Voice activity detection over audio that arrives in blocks.
///
/// [`Self::push`] any number of blocks, then [`Self::finish`]; each call
/// returns the regions that became final, in order. The regions, put
/// together, are exactly [`detect_speech`]'s on the whole recording. A
/// region is final once no later audio can change it: at most
/// `max(min_silence_ms, 2 × speech_pad_ms)` plus the smoothing window after
/// its last voiced frame, or `max_speech_s` after its start.
pub struct VadStage {
    classifier: Box<dyn FrameClassifier>,
    frame_len: usize,
    window: usize,
    onset: f32,
    offset: f32,
    pad: usize,
    min_speech: usize,
    min_silence: usize,
    max_len: usize,
    /// Samples of an incomplete frame.
    partial: Vec<f32>,
    /// Samples pushed.
    samples: usize,
    /// Frames classified.
    frames: usize,
    /// Frame decisions from frame `info_base` on, for choosing cuts.
    info: VecDeque<FrameInfo>,
    info_base: usize,
    /// Speech probabilities of the last `window` frames.
    ring: VecDeque<f32>,
    speaking: bool,
    /// Frame index after the last voiced frame of the current run.
    last_voiced_end: usize,
    /// Frame index where the last finished run of speech ended.
    prev_run_end: usize,
    current: Option<Current>,
    active: Option<Active>,
    /// Unpadded end of the last kept region handed out completely.
    last_kept_end: Option<usize>,
    /// End of the last region handed out.
    emitted_end: usize,
    out: Vec<SpeechRegion>,
    finished: bool,
}

impl VadStage {
    /// A stage with WebRTC's detector as `opts` configures it.
    pub fn new(opts: &VadOptions) -> Result<Self, VadError> {
        opts.check()?;
        let classifier = WebRtcClassifier::new(opts.mode, opts.frame_ms)?;
        VadStage::with_classifier(Box::new(classifier), opts)
    }

    /// A stage deciding frames with `classifier`; `opts` gives the smoothing
    /// and region parameters (its `mode` and `frame_ms` are WebRTC's and
    /// are not used here).
    pub fn with_classifier(
        classifier: Box<dyn FrameClassifier>,
        opts: &VadOptions,
    ) -> Result<Self, VadError> {
        opts.check()?;
        let frame_len = classifier.frame_len();
        if frame_len == 0 {
            return Err(VadError::Detector("frame length 0".into()));
        }
        let window_samples = opts.window_ms as usize * PER_MS;
        let window = window_samples.div_ceil(frame_len).max(1);
        let max_len = if opts.max_speech_s.is_finite() {
            (opts.max_speech_s * RATE as f64).round() as usize
        } else {
            usize::MAX
        };
        Ok(VadStage {
            classifier,
            frame_len,
            window,
            onset: opts.onset,
            offset: opts.offset,
            pad: opts.speech_pad_ms as usize * PER_MS,
            min_speech: opts.min_speech_ms as usize * PER_MS,
            min_silence: opts.min_silence_ms as usize * PER_MS,
            max_len,
            partial: Vec::with_capacity(frame_len),
            samples: 0,
            frames: 0,
            info: VecDeque::new(),
            info_base: 0,
            ring: VecDeque::with_capacity(window),
            speaking: false,
            last_voiced_end: 0,
            prev_run_end: 0,
            current: None,
            active: None,
            last_kept_end: None,
            emitted_end: 0,
            out: Vec::new(),
            finished: false,
        })
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> usize {
        self.samples
    }

    /// Every sample before this index is either in a region already
    /// returned or in none that will be: a caller gathering speech may drop
    /// them.
    pub fn retain_from(&self) -> usize {
        let mut from = self
            .earliest_next_start()
            .saturating_sub(self.pad)
            .min(self.samples);
        if let Some(c) = self.current {
            from = from.min(c.start.saturating_sub(self.pad));
        }
        if let Some(a) = self.active {
            from = from.min(a.piece_start);
        }
        from.max(self.emitted_end)
    }

    /// Runs the detector over the next `block` of samples; returns the
    /// regions that became final.
    pub fn push(&mut self, block: &[f32]) -> Result<Vec<SpeechRegion>, VadError> {
        if self.finished {
            return Err(VadError::Finished);
        }
        self.samples += block.len();
        let mut rest = block;
        if !self.partial.is_empty() {
            let take = (self.frame_len - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == self.frame_len {
                let frame = std::mem::take(&mut self.partial);
                self.frame(&frame)?;
                self.partial = frame;
                self.partial.clear();
            }
        }
        let mut frames = rest.chunks_exact(self.frame_len);
        for frame in frames.by_ref() {
            self.frame(frame)?;
        }
        self.partial.extend_from_slice(frames.remainder());
        self.prune();
        Ok(std::mem::take(&mut self.out))
    }

    /// Ends the stream (a trailing part-frame is not classified but can be
    /// covered by padding); returns the remaining regions.
    pub fn finish(&mut self) -> Result<Vec<SpeechRegion>, VadError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        if self.speaking {
            self.speaking = false;
            self.prev_run_end = self.last_voiced_end;
        }
        if let Some(c) = self.current.take() {
            if !c.kept && c.end - c.start >= self.min_speech {
                self.keep(c);
            }
        }
        if self.active.is_some() {
            self.finalize_active(None);
        }
        self.info.clear();
        Ok(std::mem::take(&mut self.out))
    }

    /// Where the next region could start at the earliest, in samples.
    fn earliest_next_start(&self) -> usize {
        let frame = (self.frames + 1)
            .saturating_sub(self.window)
            .max(self.prev_run_end);
        frame * self.frame_len
    }

    fn frame(&mut self, frame: &[f32]) -> Result<(), VadError> {
        let p = self.classifier.speech_probability(frame)?;
        let voiced = p >= 0.5;
        let energy = frame.iter().map(|x| x * x).sum::<f32>() / frame.len() as f32;
        let index = self.frames;
        self.frames += 1;
        if self.info.is_empty() {
            self.info_base = index;
        }
        self.info.push_back(FrameInfo { voiced, energy });
        if self.ring.len() == self.window {
            self.ring.pop_front();
        }
        self.ring.push_back(p);
        let share = self.ring.iter().sum::<f32>() / self.window as f32;
        let f = self.frame_len;

        if !self.speaking {
            if share >= self.onset {
                // The run starts at the first voiced frame of the window
                // (after the previous run) and reaches its last one.
                let first = index + 1 - self.ring.len();
                let voiced_frames: Vec<usize> = self
                    .ring
                    .iter()
                    .enumerate()
                    .filter(|&(i, &p)| p >= 0.5 && first + i >= self.prev_run_end)
                    .map(|(i, _)| first + i)
                    .collect();
                let (start, end) = match (voiced_frames.first(), voiced_frames.last()) {
                    (Some(&s), Some(&e)) => (s, e + 1),
                    _ => (index, index + 1),
                };
                self.speaking = true;
                self.last_voiced_end = end;
                self.onset_at(start * f, end * f);
            }
        } else {
            if voiced {
                self.last_voiced_end = index + 1;
            }
            if share <= self.offset {
                self.speaking = false;
                self.prev_run_end = self.last_voiced_end;
            }
        }

        if let Some(c) = self.current.as_mut() {
            c.end = c.end.max(self.last_voiced_end * f);
        }
        if let Some(c) = self.current {
            if !c.kept && c.end - c.start >= self.min_speech {
                self.keep(c);
            }
        }
        if let Some(c) = self.current {
            if c.kept {
                if let Some(a) = self.active.as_mut() {
                    a.raw_end = c.end;
                }
                // Cut as soon as the region is known to be too long.
                while let Some(a) = self.active {
                    if a.raw_end <= a.piece_start.saturating_add(self.max_len) {
                        break;
                    }
                    self.cut_piece();
                }
            }
            if !self.speaking && self.earliest_next_start() >= c.end + self.min_silence {
                // Nothing can merge with it any more.
                self.current = None;
            }
        }
        if self.current.is_none() {
            if let Some(a) = self.active {
                if self.earliest_next_start() >= a.raw_end + 2 * self.pad {
                    self.finalize_active(None);
                }
            }
        }
        Ok(())
    }

    /// A run of speech starts: merge it into the current region or begin a
    /// new one.
    fn onset_at(&mut self, start: usize, end: usize) {
        if let Some(c) = self.current.as_mut() {
            if start.saturating_sub(c.end) < self.min_silence {
                c.end = c.end.max(end);
                return;
            }
        }
        // The current region is complete; a short one is dropped.
        self.current = Some(Current {
            start,
            end,
            kept: false,
        });
    }

    /// Region `c` is long enough to keep: the previous kept region gets its
    /// right end and `c` becomes the active one.
    fn keep(&mut self, c: Current) {
        if self.active.is_some() {
            self.finalize_active(Some(c.start));
        }
        let left = match self.last_kept_end {
            Some(e) if c.start - e < 2 * self.pad => e + (c.start - e) / 2,
            _ => c.start.saturating_sub(self.pad),
        };
        self.active = Some(Active {
            piece_start: left.max(self.emitted_end),
            raw_end: c.end,
        });
        if let Some(cur) = self.current.as_mut() {
            cur.kept = true;
        }
    }

    /// Hands out the rest of the active region, padded up to `next` (the
    /// start of the next kept region) or the end of the recording.
    fn finalize_active(&mut self, next: Option<usize>) {
        let Some(a) = self.active else { return };
        let end = match next {
            Some(n) if n - a.raw_end < 2 * self.pad => a.raw_end + (n - a.raw_end) / 2,
            _ => a.raw_end + self.pad,
        }
        .min(self.samples);
        while let Some(a) = self.active {
            if end - a.piece_start <= self.max_len {
                break;
            }
            self.cut_piece();
        }
        let a = self.active.take().expect("active region");
        self.emit(a.piece_start, end);
        self.last_kept_end = Some(a.raw_end);
    }

    /// Hands out one `max_len` piece of the active region.
    fn cut_piece(&mut self) {
        let Some(a) = self.active else { return };
        let hi = a.piece_start + self.max_len;
        let cut = self.choose_cut(a.piece_start + self.max_len / 2, hi);
        self.emit(a.piece_start, cut);
        if let Some(a) = self.active.as_mut() {
            a.piece_start = cut;
        }
    }

    /// A frame boundary in `(lo, hi]`: the middle of the longest unvoiced
    /// run of whole frames within `[lo, hi)` (the latest of equals), else
    /// the end of the quietest frame, else `hi`.
    fn choose_cut(&self, lo: usize, hi: usize) -> usize {
        let f = self.frame_len;
        let first = lo.div_ceil(f).max(self.info_base);
        let last = (hi / f).min(self.info_base + self.info.len()); // exclusive
        if first >= last {
            return hi;
        }
        let at = |i: usize| self.info[i - self.info_base];
        let mut best_run: Option<(usize, usize)> = None; // (start, length)
        let mut run_start = None;
        for i in first..=last {
            let unvoiced = i < last && !at(i).voiced;
            match (unvoiced, run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(s)) => {
                    let len = i - s;
                    if !matches!(best_run, Some((_, l)) if len < l) {
                        best_run = Some((s, len));
                    }
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some((s, len)) = best_run {
            return (s + len.div_ceil(2)) * f;
        }
        let quietest = (first..last)
            .rev()
            .min_by(|&a, &b| at(a).energy.total_cmp(&at(b).energy))
            .expect("non-empty range");
        (quietest + 1) * f
    }

    fn emit(&mut self, start: usize, end: usize) {
        if end > start {
            self.out.push(SpeechRegion { start, end });
            self.emitted_end = end;
        }
    }

    /// Forgets frame decisions no cut can need any more.
    fn prune(&mut self) {
        let keep_from = self.retain_from() / self.frame_len;
        while self.info_base < keep_from && !self.info.is_empty() {
            self.info.pop_front();
            self.info_base += 1;
        }
    }
}

/// The speech of a block stream: wraps blocks of 16 kHz mono samples (an
/// [`crate::audio::AudioStream`], say) and yields only what lies in speech
/// regions, end to end, in blocks of at most [`BLOCK_SAMPLES`]; it holds no
/// more than about `max_speech_s` of audio whatever the stream's length.
///
/// Errors of the inner stream are passed on (and end the stream); a
/// detector error ends it too and is returned by [`Self::into_timeline`].
///
/// ```no_run
/// # use asr_pipeline::{audio::AudioStream, vad::{SpeechBlocks, VadOptions}, DecodeOptions, Transcriber};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let transcriber = Transcriber::load("tiny.en")?;
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

    /// With a stage of any detector ([`VadStage::with_classifier`]).
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
        let pad = self.stage.pad as f64 / RATE as f64;
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

/// Speech regions laid end to end: the recording with its non-speech cut
/// out. Gathers that compacted signal and maps times on it back to the
/// recording.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpeechTimeline {
    regions: Vec<SpeechRegion>,
    /// Where each region starts in the compacted signal, in samples.
    offsets: Vec<usize>,
    len: usize,
    /// Seconds by which a span may cross a join and still be kept on its
    /// side ([`Self::with_join_tolerance`]).
    join_tolerance: f64,
}

impl SpeechTimeline {
    /// The timeline of `regions` (sorted by start; parts overlapping an
    /// earlier region and empty regions are dropped).
    pub fn new(regions: impl IntoIterator<Item = SpeechRegion>) -> Self {
        let mut sorted: Vec<SpeechRegion> = regions.into_iter().collect();
        sorted.sort_by_key(|r| (r.start, r.end));
        let mut timeline = SpeechTimeline::default();
        let mut prev_end = 0;
        for r in sorted {
            let start = r.start.max(prev_end);
            if r.end <= start {
                continue;
            }
            timeline.regions.push(SpeechRegion { start, end: r.end });
            timeline.offsets.push(timeline.len);
            timeline.len += r.end - start;
            prev_end = r.end;
        }
        timeline
    }

    /// Spans mapped by [`Self::map_transcript`] that cross a join between
    /// two regions by less than `seconds` on one side (and more on the
    /// other) are kept on the other side: a segment whose end lands 0.1 s
    /// into the next region (the padding before its speech) ends where its
    /// own region ends rather than after the gap. The speech padding is a
    /// good value; 0 (the default) maps times exactly.
    pub fn with_join_tolerance(mut self, seconds: f64) -> Self {
        self.join_tolerance = seconds.max(0.0);
        self
    }

    pub fn regions(&self) -> &[SpeechRegion] {
        &self.regions
    }

    /// Samples of the compacted signal.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Seconds of the compacted signal.
    pub fn duration(&self) -> f64 {
        self.len as f64 / RATE as f64
    }

    /// Where region `k` starts in the compacted signal, in samples.
    pub fn offset(&self, k: usize) -> usize {
        self.offsets[k]
    }

    /// The compacted signal: the samples of every region, in order (regions
    /// past the end of `samples` are cut short).
    pub fn gather(&self, samples: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len);
        for r in &self.regions {
            let end = r.end.min(samples.len());
            if r.start < end {
                out.extend_from_slice(&samples[r.start..end]);
            }
        }
        out
    }

    /// The recording's time of time `t` (seconds) of the compacted signal.
    /// A time where two regions meet maps to the start of the later one
    /// (right for the start of a segment); times past the end continue
    /// after the last region; negative times map to the first region's
    /// start. An empty timeline maps every time to itself.
    pub fn to_original(&self, t: f64) -> f64 {
        if self.regions.is_empty() {
            return t;
        }
        let s = (t * RATE as f64).max(0.0);
        let k = self
            .offsets
            .partition_point(|&o| o as f64 <= s)
            .saturating_sub(1);
        (self.regions[k].start as f64 + s - self.offsets[k] as f64) / RATE as f64
    }

    /// Like [`Self::to_original`], but a time where two regions meet maps
    /// to the end of the earlier one (right for the end of a segment).
    pub fn to_original_end(&self, t: f64) -> f64 {
        if self.regions.is_empty() {
            return t;
        }
        let s = (t * RATE as f64).max(0.0);
        // Region k ends where region k + 1 starts; the last one is taken
        // for anything after the end.
        let k = self.offsets[1..].partition_point(|&o| (o as f64) < s);
        (self.regions[k].start as f64 + s - self.offsets[k] as f64) / RATE as f64
    }

    /// The compacted signal's time of the recording's time `t`; a time
    /// outside every region maps to where the next region starts.
    pub fn to_compacted(&self, t: f64) -> f64 {
        let s = (t * RATE as f64).max(0.0);
        let k = self.regions.partition_point(|r| r.start as f64 <= s);
        if k == 0 {
            return 0.0;
        }
        let r = self.regions[k - 1];
        let inside = (s - r.start as f64).min(r.len() as f64);
        (self.offsets[k - 1] as f64 + inside) / RATE as f64
    }

    /// Moves a transcript of the compacted signal onto the recording's
    /// timeline: segment and word starts with [`Self::to_original`], ends
    /// with [`Self::to_original_end`] (never before the start; both within
    /// the join tolerance), and `seek`.
    pub fn map_transcript(&self, transcript: &mut Transcript) {
        for segment in &mut transcript.segments {
            let (start, end) = self.map_span(segment.start, segment.end);
            segment.start = start;
            segment.end = end;
            let seek = self.to_original(segment.seek as f64 / 100.0) * 100.0;
            segment.seek = seek.round() as usize;
            for word in &mut segment.words {
                let (start, end) = self.map_span(word.word.start, word.word.end);
                word.word.start = start;
                word.word.end = end;
            }
        }
    }

    /// A span `[start, end)` of the compacted signal on the recording's
    /// timeline, snapped within the join tolerance.
    pub fn map_span(&self, start: f64, end: f64) -> (f64, f64) {
        let (mut start_c, mut end_c) = (start, end);
        let tol = self.join_tolerance;
        if tol > 0.0 && end_c > start_c && self.regions.len() > 1 {
            let rate = RATE as f64;
            // Joins over a gap (where regions meet with nothing cut out
            // between them, mapping is continuous) strictly inside the span.
            let inside = self.offsets[1..].partition_point(|&o| o as f64 / rate <= start_c)
                ..self.offsets[1..].partition_point(|&o| (o as f64 / rate) < end_c);
            let mut joins = inside
                .map(|i| i + 1)
                .filter(|&k| self.regions[k].start > self.regions[k - 1].end)
                .map(|k| self.offsets[k] as f64 / rate);
            if let Some(j_first) = joins.next() {
                let j_last = joins.next_back().unwrap_or(j_first);
                if j_first - start_c < tol && end_c - j_first > tol {
                    start_c = j_first;
                }
                if end_c - j_last < tol && j_last - start_c > tol {
                    end_c = j_last;
                }
            }
        }
        let start = self.to_original(start_c);
        (start, self.to_original_end(end_c).max(start))
    }
}

/// Groups consecutive regions into batches whose speech adds up to at most
/// `max_seconds` (30 s: one Whisper window per batch, as WhisperX packs its
/// VAD segments); a longer region is a batch of its own. Each batch's
/// [`SpeechTimeline`] gathers its audio and maps its times back.
pub fn pack(regions: &[SpeechRegion], max_seconds: f64) -> Vec<Vec<SpeechRegion>> {
    let max = (max_seconds * RATE as f64).max(0.0);
    let mut batches: Vec<Vec<SpeechRegion>> = Vec::new();
    let mut batch: Vec<SpeechRegion> = Vec::new();
    let mut batch_len = 0usize;
    for &r in regions {
        if !batch.is_empty() && (batch_len + r.len()) as f64 > max {
            batches.push(std::mem::take(&mut batch));
            batch_len = 0;
        }
        batch.push(r);
        batch_len += r.len();
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{SegmentWord, Word};
    use crate::output::{Segment, Timings};

    /// 30 ms frames.
    const F: usize = 480;

    /// Voiced when a frame's mean square is above 1e-4: a detector whose
    /// decisions the test controls exactly.
    struct Loud;

    impl FrameClassifier for Loud {
        fn frame_len(&self) -> usize {
            F
        }
        fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError> {
            let energy = frame.iter().map(|x| x * x).sum::<f32>() / frame.len() as f32;
            Ok(if energy > 1e-4 { 1.0 } else { 0.0 })
        }
    }

    /// `frames` frames of silence with `level` in the frames of each burst.
    fn signal(frames: usize, bursts: &[(usize, usize)], level: f32) -> Vec<f32> {
        let mut s = vec![0.0f32; frames * F];
        for &(a, b) in bursts {
            for (i, x) in s[a * F..b * F].iter_mut().enumerate() {
                *x = if i % 2 == 0 { level } else { -level };
            }
        }
        s
    }

    /// Every stage off: regions are the runs of voiced frames.
    fn raw() -> VadOptions {
        VadOptions {
            window_ms: 0,
            speech_pad_ms: 0,
            min_speech_ms: 0,
            min_silence_ms: 0,
            max_speech_s: f64::INFINITY,
            ..VadOptions::default()
        }
    }

    fn detect(samples: &[f32], opts: &VadOptions) -> Vec<SpeechRegion> {
        let mut stage = VadStage::with_classifier(Box::new(Loud), opts).unwrap();
        let mut regions = stage.push(samples).unwrap();
        regions.extend(stage.finish().unwrap());
        regions
    }

    fn frames(regions: &[SpeechRegion]) -> Vec<(usize, usize)> {
        regions.iter().map(|r| (r.start / F, r.end / F)).collect()
    }

    fn r(start: usize, end: usize) -> SpeechRegion {
        SpeechRegion::new(start, end)
    }

    #[test]
    fn raw_regions_are_the_voiced_runs() {
        let s = signal(200, &[(50, 100), (120, 121), (150, 200)], 0.5);
        assert_eq!(
            frames(&detect(&s, &raw())),
            [(50, 100), (120, 121), (150, 200)]
        );
        assert!(detect(&[], &raw()).is_empty());
        assert!(detect(&vec![0.0; 100 * F], &VadOptions::default()).is_empty());
    }

    #[test]
    fn padding_is_added_and_clamped_to_the_recording() {
        let opts = VadOptions {
            speech_pad_ms: 300,
            ..raw()
        };
        let pad = 300 * PER_MS;
        let s = signal(200, &[(50, 100)], 0.5);
        assert_eq!(detect(&s, &opts), [r(50 * F - pad, 100 * F + pad)]);
        // At both edges; the recording ends in a part-frame.
        let mut s = signal(100, &[(2, 10), (90, 100)], 0.5);
        s.extend([0.5; 100]);
        assert_eq!(
            detect(&s, &opts),
            [r(0, 10 * F + pad), r(90 * F - pad, 100 * F + 100)]
        );
    }

    #[test]
    fn padding_never_overlaps_the_gap_is_split_in_the_middle() {
        // Gap of 10 frames (300 ms) < 2 × 300 ms padding.
        let opts = VadOptions {
            speech_pad_ms: 300,
            ..raw()
        };
        let s = signal(300, &[(50, 100), (110, 160)], 0.5);
        let mid = 105 * F;
        assert_eq!(
            detect(&s, &opts),
            [r(50 * F - 4800, mid), r(mid, 160 * F + 4800)]
        );
    }

    #[test]
    fn min_silence_merges_and_min_speech_drops() {
        // Gaps of 20 frames (600 ms); bursts of 5 frames (150 ms).
        let s = signal(400, &[(50, 100), (120, 170), (300, 305)], 0.5);
        let merge = VadOptions {
            min_silence_ms: 1000,
            ..raw()
        };
        assert_eq!(frames(&detect(&s, &merge)), [(50, 170), (300, 305)]);
        let keep_apart = VadOptions {
            min_silence_ms: 500,
            ..raw()
        };
        assert_eq!(
            frames(&detect(&s, &keep_apart)),
            [(50, 100), (120, 170), (300, 305)]
        );
        let drop_short = VadOptions {
            min_speech_ms: 250,
            ..merge.clone()
        };
        assert_eq!(frames(&detect(&s, &drop_short)), [(50, 170)]);
        // A dropped region does not cut its neighbour's padding.
        let padded = VadOptions {
            speech_pad_ms: 300,
            min_speech_ms: 250,
            ..raw()
        };
        let s = signal(400, &[(50, 100), (105, 106), (200, 250)], 0.5);
        assert_eq!(
            detect(&s, &padded),
            [
                r(50 * F - 4800, 100 * F + 4800),
                r(200 * F - 4800, 250 * F + 4800)
            ]
        );
    }

    #[test]
    fn smoothing_bridges_flicker_and_ignores_sparse_frames() {
        // Every other frame voiced for 3 s; then one frame in ten.
        let flicker: Vec<(usize, usize)> = (100..200).step_by(2).map(|i| (i, i + 1)).collect();
        let sparse: Vec<(usize, usize)> = (300..400).step_by(10).map(|i| (i, i + 1)).collect();
        let s = signal(500, &[flicker, sparse].concat(), 0.5);
        let smooth = VadOptions {
            window_ms: 300,
            onset: 0.5,
            offset: 0.1,
            ..raw()
        };
        assert_eq!(frames(&detect(&s, &smooth)), [(100, 199)]);
        assert_eq!(detect(&s, &raw()).len(), 60);
    }

    #[test]
    fn long_regions_are_cut_in_the_longest_pause_of_their_second_half() {
        // 70 s of speech with pauses of 5 frames at 800 and 2 at 1700,
        // a 1-frame pause at 200 (first half of the first piece: not used).
        let s = signal(
            2334,
            &[(0, 200), (201, 800), (805, 1700), (1702, 2334)],
            0.5,
        );
        let opts = VadOptions {
            min_silence_ms: 500,
            max_speech_s: 30.0,
            ..raw()
        };
        let regions = detect(&s, &opts);
        assert_eq!(frames(&regions), [(0, 803), (803, 1701), (1701, 2334)]);
        assert!(regions.iter().all(|r| r.len() <= 30 * RATE));
    }

    #[test]
    fn without_pauses_the_cut_follows_the_quietest_frame() {
        let mut s = signal(1800, &[(0, 1800)], 0.5);
        for x in &mut s[900 * F..901 * F] {
            *x *= 0.1; // quieter but still voiced
        }
        let opts = VadOptions {
            max_speech_s: 30.0,
            speech_pad_ms: 300,
            ..raw()
        };
        let regions = detect(&s, &opts);
        assert_eq!(regions, [r(0, 901 * F), r(901 * F, 1800 * F)]);
    }

    /// A pseudo-random sequence for block sizes.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn streaming_in_any_blocks_gives_the_slice_result() {
        let bursts = [
            (3, 40),
            (45, 46),
            (60, 90),
            (92, 1200),
            (1230, 1300),
            (1400, 1405),
            (1500, 3800),
            (3810, 3850),
        ];
        let mut s = signal(3900, &bursts, 0.3);
        s.extend([0.3; 123]);
        let configs = [
            VadOptions::default(),
            raw(),
            VadOptions {
                max_speech_s: 5.0,
                speech_pad_ms: 700,
                min_silence_ms: 200,
                ..VadOptions::default()
            },
            VadOptions {
                window_ms: 90,
                min_speech_ms: 1000,
                max_speech_s: 3.0,
                ..VadOptions::default()
            },
        ];
        let mut seed = 7;
        for opts in &configs {
            let whole = detect(&s, opts);
            assert!(!whole.is_empty());
            for w in whole.windows(2) {
                assert!(w[0].end <= w[1].start && w[0].start < w[0].end);
            }
            for _ in 0..5 {
                let mut stage = VadStage::with_classifier(Box::new(Loud), opts).unwrap();
                let mut regions = Vec::new();
                let mut at = 0;
                while at < s.len() {
                    let n = (lcg(&mut seed) as usize % 7000).min(s.len() - at);
                    let floor = stage.retain_from();
                    let found = stage.push(&s[at..at + n]).unwrap();
                    assert!(found.iter().all(|r| r.start >= floor));
                    regions.extend(found);
                    at += n;
                }
                regions.extend(stage.finish().unwrap());
                assert_eq!(regions, whole, "{opts:?}");
                // The block adapter hands out exactly the gathered speech.
                let blocks = s
                    .chunks(1 + lcg(&mut seed) as usize % 20_000)
                    .map(|b| Ok::<_, ()>(b.to_vec()));
                let mut speech = SpeechBlocks::with_stage(
                    blocks,
                    VadStage::with_classifier(Box::new(Loud), opts).unwrap(),
                );
                let mut gathered = Vec::new();
                for block in speech.by_ref() {
                    let block = block.unwrap();
                    assert!(!block.is_empty() && block.len() <= BLOCK_SAMPLES);
                    gathered.extend(block);
                }
                let timeline = speech.into_timeline().unwrap();
                assert_eq!(timeline.regions(), &whole[..]);
                assert_eq!(gathered, timeline.gather(&s));
            }
        }
    }

    #[test]
    fn block_adapter_passes_errors_on() {
        let blocks = vec![Ok(vec![0.5f32; 4000]), Err("broken"), Ok(vec![0.0; 10])];
        let mut speech = SpeechBlocks::with_stage(
            blocks.into_iter(),
            VadStage::with_classifier(Box::new(Loud), &raw()).unwrap(),
        );
        assert_eq!(speech.next(), Some(Err("broken")));
        assert_eq!(speech.next(), None);
    }

    fn timeline() -> SpeechTimeline {
        // 1–2 s, 3–3.5 s and 3.5–4 s of the recording.
        SpeechTimeline::new([r(48_000, 56_000), r(16_000, 32_000), r(56_000, 64_000)])
    }

    #[test]
    fn timeline_gathers_the_regions_in_order() {
        let samples: Vec<f32> = (0..70_000).map(|i| i as f32).collect();
        let t = timeline();
        assert_eq!(t.len(), 32_000);
        assert_eq!(t.duration(), 2.0);
        let gathered = t.gather(&samples);
        assert_eq!(gathered.len(), 32_000);
        assert_eq!(gathered[0], 16_000.0);
        assert_eq!(gathered[16_000], 48_000.0);
        assert_eq!(gathered[31_999], 63_999.0);
        // Regions past the end are cut short.
        assert_eq!(t.gather(&samples[..50_000]).len(), 16_000 + 2_000);
        // Overlaps and empty regions are dropped.
        let t = SpeechTimeline::new([r(0, 10), r(5, 20), r(30, 30)]);
        assert_eq!(t.regions(), [r(0, 10), r(10, 20)]);
    }

    #[test]
    fn timeline_maps_compacted_times_back() {
        let t = timeline();
        assert_eq!(t.to_original(0.0), 1.0);
        assert_eq!(t.to_original(0.5), 1.5);
        // Where regions meet: a start goes to the later one, an end to the
        // earlier one.
        assert_eq!(t.to_original(1.0), 3.0);
        assert_eq!(t.to_original_end(1.0), 2.0);
        assert_eq!(t.to_original(1.25), 3.25);
        assert_eq!(t.to_original(1.5), 3.5);
        assert_eq!(t.to_original_end(1.5), 3.5);
        assert_eq!(t.to_original_end(0.0), 1.0);
        assert_eq!(t.to_original(-1.0), 1.0);
        // Past the end: after the last region.
        assert_eq!(t.to_original(2.5), 4.5);
        assert_eq!(t.to_original_end(2.5), 4.5);
        assert_eq!(SpeechTimeline::default().to_original(7.0), 7.0);
        // Back to the compacted signal; gaps go to the next region.
        assert_eq!(t.to_compacted(0.2), 0.0);
        assert_eq!(t.to_compacted(1.5), 0.5);
        assert_eq!(t.to_compacted(2.5), 1.0);
        assert_eq!(t.to_compacted(3.75), 1.75);
        assert_eq!(t.to_compacted(9.0), 2.0);
    }

    #[test]
    fn times_inside_a_region_round_trip() {
        let t = timeline();
        let mut seed = 3;
        for (k, region) in t.regions().iter().enumerate() {
            for _ in 0..50 {
                let x = region.start + lcg(&mut seed) as usize % region.len();
                let original = x as f64 / RATE as f64;
                let compacted = t.to_compacted(original);
                assert!((t.to_original(compacted) - original).abs() < 1e-9);
                let c = (t.offset(k) + (x - region.start)) as f64 / RATE as f64;
                let back = t.to_original(c);
                assert!(back >= region.start_s() && back < region.end_s());
            }
        }
    }

    #[test]
    fn transcripts_move_to_the_recording_timeline() {
        let segment = |start: f64, end: f64, seek: usize| Segment {
            id: 0,
            seek,
            start,
            end,
            text: String::new(),
            tokens: Vec::new(),
            temperature: 0.0,
            avg_logprob: 0.0,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words: vec![SegmentWord::from(Word {
                word: " x".into(),
                start: start + 0.1,
                end,
                probability: 1.0,
            })],
            speaker: None,
        };
        let mut transcript = Transcript {
            text: String::new(),
            segments: vec![segment(0.0, 1.0, 0), segment(1.0, 1.0, 100)],
            language: None,
            language_probability: None,
            timings: Timings::default(),
        };
        timeline().map_transcript(&mut transcript);
        let s = &transcript.segments;
        assert_eq!((s[0].start, s[0].end, s[0].seek), (1.0, 2.0, 100));
        assert_eq!(
            (s[0].words[0].word.start, s[0].words[0].word.end),
            (1.1, 2.0)
        );
        // An empty segment at a join never ends before it starts.
        assert_eq!((s[1].start, s[1].end, s[1].seek), (3.0, 3.0, 300));
    }

    #[test]
    fn spans_crossing_a_join_slightly_stay_on_their_side() {
        let exact = timeline();
        let t = timeline().with_join_tolerance(0.3);
        let near = |(a, b): (f64, f64), (c, d): (f64, f64)| {
            assert!(
                (a - c).abs() < 1e-9 && (b - d).abs() < 1e-9,
                "{a}-{b} vs {c}-{d}"
            );
        };
        // Ends 0.1 s after the join at 1.0 (the gap 2–3 s).
        near(exact.map_span(0.2, 1.1), (1.2, 3.1));
        near(t.map_span(0.2, 1.1), (1.2, 2.0));
        // Starts 0.1 s before it.
        near(t.map_span(0.9, 1.4), (3.0, 3.4));
        // Short spans around a join and spans well across it are exact.
        near(t.map_span(0.95, 1.05), (1.95, 3.05));
        near(t.map_span(0.5, 1.5), (1.5, 3.5));
        // At the touching join (3.5 s) snapping changes nothing.
        near(t.map_span(1.2, 1.6), (3.2, 3.6));
    }

    #[test]
    fn pack_groups_consecutive_regions_into_windows() {
        let mut at = 0;
        let regions: Vec<SpeechRegion> = [10, 10, 10, 5, 25, 40, 1]
            .iter()
            .map(|s| {
                let region = r(at, at + s * RATE);
                at = region.end + RATE;
                region
            })
            .collect();
        let sizes: Vec<Vec<usize>> = pack(&regions, 30.0)
            .iter()
            .map(|b| b.iter().map(|r| r.len() / RATE).collect())
            .collect();
        assert_eq!(sizes, [vec![10, 10, 10], vec![5, 25], vec![40], vec![1]]);
        assert_eq!(pack(&regions, 30.0).concat(), regions);
        assert!(pack(&[], 30.0).is_empty());
    }

    #[test]
    fn invalid_options_are_listed() {
        assert!(VadOptions::default().problems().is_empty());
        let bad = VadOptions {
            mode: 4,
            frame_ms: 25,
            window_ms: 60_000,
            onset: 0.0,
            offset: 1.0,
            max_speech_s: 0.5,
            ..VadOptions::default()
        };
        let keys: Vec<String> = bad
            .problems()
            .iter()
            .map(|p| p.split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "vad.mode",
                "vad.frame_ms",
                "vad.window_ms",
                "vad.onset",
                "vad.offset",
                "vad.max_speech_s"
            ]
        );
        let crossed = VadOptions {
            onset: 0.3,
            offset: 0.4,
            ..VadOptions::default()
        };
        assert_eq!(
            crossed.problems(),
            ["vad.offset: 0.4 is not below vad.onset (0.3)"]
        );
        let nan = VadOptions {
            max_speech_s: f64::NAN,
            ..VadOptions::default()
        };
        assert_eq!(nan.problems().len(), 1);
        match detect_speech(&[0.0; 100], &bad) {
            Err(VadError::Options(p)) => assert_eq!(p.len(), 6),
            other => panic!("{other:?}"),
        }
        assert!(VadStage::new(&bad).is_err());
    }

    #[test]
    fn options_read_from_toml() {
        let opts: VadOptions = toml::from_str("mode = 1\nmax_speech_s = inf").unwrap();
        assert_eq!(opts.mode, 1);
        assert!(opts.max_speech_s.is_infinite());
        assert_eq!(opts.frame_ms, 30);
        assert!(opts.problems().is_empty());
        let err = toml::from_str::<VadOptions>("mode = 1\npadding = 3").unwrap_err();
        assert!(err.to_string().contains("padding"), "{err}");
    }

    #[test]
    fn the_stage_can_move_between_threads() {
        fn send<T: Send>(_: &T) {}
        let stage = VadStage::new(&VadOptions::default()).unwrap();
        send(&stage);
        let handle = std::thread::spawn(move || {
            let mut stage = stage;
            stage.push(&[0.0; 16_000]).unwrap().len() + stage.finish().unwrap().len()
        });
        assert_eq!(handle.join().unwrap(), 0);
    }
}
