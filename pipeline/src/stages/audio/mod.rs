//! Audio input: any container/codec symphonia reads (WAV of every common
//! encoding, FLAC, MP3, Ogg Vorbis, MP4/M4A with AAC or ALAC) → mono f32 at
//! 16 kHz, channels averaged, resampled with a windowed-sinc resampler.
//!
//! [`AudioStream`] decodes and resamples packet by packet and hands out the
//! result in blocks of at most [`BLOCK_SAMPLES`], so hours-long files need
//! no more memory than minutes-long ones; [`load_audio`] collects the same
//! stream into one buffer. The blocks of a stream put end to end are,
//! sample for sample, one whole-buffer pass of the same resampler: the
//! filter delay trimmed at the start and `round(n * 16000 / rate)` samples
//! in all for `n` input frames.

mod files;
mod quietest;

pub use files::{audio_files_in, is_audio};

use std::fmt;
use std::fs::File;
use std::iter::FusedIterator;
use std::path::{Path, PathBuf};

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

pub use asr_models::whisper::constants::SAMPLE_RATE;

/// The longest block an [`AudioStream`] yields: one second at
/// [`SAMPLE_RATE`]. Every block but the last has exactly this length.
pub const BLOCK_SAMPLES: usize = SAMPLE_RATE as usize;

/// Input frames per resampler call. Part of the output's definition: the
/// filter state at a chunk boundary depends on it, so the streaming and any
/// whole-buffer reference must use the same value.
const RESAMPLER_CHUNK: usize = 4096;

/// The lowest sample rate read: below it a file is broken rather than
/// speech (a 1 Hz file would be resampled 16000-fold).
pub const MIN_SAMPLE_RATE: u32 = 1000;

mod wav_header;

pub(crate) use quietest::quietest_cut;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: unsupported or unrecognized audio format ({reason})")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: cannot decode audio: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("{path}: contains no audio samples")]
    Empty { path: PathBuf },
    #[error("{path}: a sample rate of {rate} Hz, below the {MIN_SAMPLE_RATE} Hz minimum")]
    SampleRate { path: PathBuf, rate: u32 },
    #[error(
        "{path}: truncated: the audio ends at {ends:.1} s of the {states:.1} s its header states"
    )]
    Truncated {
        path: PathBuf,
        ends: f64,
        states: f64,
    },
    #[error("{path}: non-finite samples (NaN or infinity) at {seconds:.2} s")]
    NonFinite { path: PathBuf, seconds: f64 },
}

/// Refuses samples holding NaN or infinity, which would pass through every
/// stage as garbage text; `start` is the seconds before the first sample.
pub fn refuse_non_finite(
    name: &Path,
    samples: &[f32],
    start: f64,
    rate: u32,
) -> Result<(), AudioError> {
    match samples.iter().position(|s| !s.is_finite()) {
        None => Ok(()),
        Some(at) => Err(AudioError::NonFinite {
            path: name.to_path_buf(),
            seconds: start + at as f64 / f64::from(rate),
        }),
    }
}

/// Consecutive blocks of 16 kHz mono samples (an [`AudioStream`], or
/// samples already in memory), each block or the error that ended them.
pub trait AudioBlocks: Iterator<Item = Result<Vec<f32>, AudioError>> {}

impl<I: Iterator<Item = Result<Vec<f32>, AudioError>>> AudioBlocks for I {}

/// A whole recording as the stages after recognition read it again: a
/// file, streamed anew in bounded memory, or samples already in memory.
#[derive(Clone, Copy, Debug)]
pub enum Recording<'a> {
    File(&'a Path),
    Samples(&'a [f32]),
}

impl<'a> Recording<'a> {
    /// Its blocks from the start.
    pub fn blocks(&self) -> Result<Box<dyn AudioBlocks + 'a>, AudioError> {
        Ok(self.open()?.0)
    }

    /// Its blocks from the start, and its length in seconds when known
    /// without decoding it (a file opened once for both).
    pub fn open(&self) -> Result<(Box<dyn AudioBlocks + 'a>, Option<f64>), AudioError> {
        Ok(match *self {
            Recording::File(path) => {
                let stream = AudioStream::open(path)?;
                let duration = stream.duration();
                (Box::new(stream), duration)
            }
            Recording::Samples(samples) => {
                refuse_non_finite(Path::new("samples"), samples, 0.0, SAMPLE_RATE)?;
                (
                    Box::new(samples.chunks(BLOCK_SAMPLES).map(|b| Ok(b.to_vec()))),
                    self.duration(),
                )
            }
        })
    }

    /// All its samples (a file is decoded whole).
    pub fn samples(&self) -> Result<std::borrow::Cow<'a, [f32]>, AudioError> {
        Ok(match *self {
            Recording::File(path) => load_audio(path)?.into(),
            Recording::Samples(samples) => samples.into(),
        })
    }

    /// What errors call it: the file, or "samples".
    pub fn name(&self) -> PathBuf {
        match *self {
            Recording::File(path) => path.to_path_buf(),
            Recording::Samples(_) => PathBuf::from("samples"),
        }
    }

    /// Its length in seconds, when known without decoding it.
    pub fn duration(&self) -> Option<f64> {
        match *self {
            Recording::File(path) => AudioStream::open(path).ok()?.duration(),
            Recording::Samples(samples) => Some(samples.len() as f64 / SAMPLE_RATE as f64),
        }
    }
}

/// Reads `path` as mono f32 samples at [`SAMPLE_RATE`]: all blocks of its
/// [`AudioStream`], end to end.
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    let mut samples = Vec::new();
    for block in AudioStream::open(path)? {
        samples.extend_from_slice(&block?);
    }
    Ok(samples)
}

/// 16 kHz mono samples of an audio file, decoded and resampled block by
/// block.
///
/// Yields blocks in order, each non-empty and at most [`BLOCK_SAMPLES`]
/// long; after the last block (or after an error) it yields `None`. A file
/// without samples yields a single [`AudioError::Empty`]. What the stream
/// holds is one packet, the resampler's state and less than a block and a
/// packet of pending samples, whatever the file's length.
///
/// Packets are mixed to mono one by one, so a channel count that changes
/// mid-stream is handled; a sample rate that changes mid-stream is a
/// [`AudioError::Decode`] error, a NaN or infinite sample an
/// [`AudioError::NonFinite`] one. Corrupt frames of compressed streams are
/// skipped, as players do.
pub struct AudioStream {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    /// Rate and length the container states, for [`AudioStream::duration`].
    container_rate: u32,
    container_frames: Option<u64>,
    /// The decoded rate and what converts it to 16 kHz, from the first
    /// decoded packet on.
    input: Option<Input>,
    /// Scratch for one packet: interleaved, then mixed to mono.
    interleaved: Option<SampleBuffer<f32>>,
    mono: Vec<f32>,
    /// Input frames decoded so far, to say where a bad sample is.
    decoded_frames: u64,
    /// 16 kHz samples not handed out yet.
    ready: Vec<f32>,
    emitted: u64,
    state: State,
    /// See [`AudioStream::refuse_truncated`].
    refuse_truncated: bool,
}

struct Input {
    rate: u32,
    /// `None` when the file already is at [`SAMPLE_RATE`].
    resampler: Option<StreamResampler>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Packets are still coming.
    Decoding,
    /// The input has ended and the resampler is flushed: hand out `ready`.
    Draining,
    /// Everything has been handed out, or an error has been.
    Done,
}

impl AudioStream {
    /// Opens `path` and probes its format; errors name the file.
    pub fn open(path: &Path) -> Result<AudioStream, AudioError> {
        let file = File::open(path).map_err(|error| AudioError::Open {
            path: path.to_path_buf(),
            error,
        })?;
        AudioStream::from_source(path, file)
    }

    /// A stream over an audio file held in memory (an upload); errors call
    /// it `name`, whose extension is a hint to its format.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<AudioStream, AudioError> {
        AudioStream::from_source(name, std::io::Cursor::new(bytes))
    }

    /// Makes a file that ends well before the length its header states an
    /// [`AudioError::Truncated`] error rather than a warning (a server
    /// refuses a cut upload; a batch transcribes what is there).
    pub fn refuse_truncated(mut self) -> AudioStream {
        self.refuse_truncated = true;
        self
    }

    fn from_source(
        path: &Path,
        mut source: impl MediaSource + 'static,
    ) -> Result<AudioStream, AudioError> {
        let unsupported = |reason: String| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        let open_error = |error| AudioError::Open {
            path: path.to_path_buf(),
            error,
        };
        if let Some(rate) = wav_header::wav_sample_rate(&mut source).map_err(open_error)? {
            check_rate(path, rate)?;
        }
        let source = MediaSourceStream::new(Box::new(source), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let probed = symphonia::default::get_probe()
            .format(
                &hint,
                source,
                &FormatOptions::default(),
                &MetadataOptions::default(),
            )
            .map_err(|e| unsupported(e.to_string()))?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| unsupported("no audio track".into()))?;
        let params = &track.codec_params;
        let container_rate = params
            .sample_rate
            .filter(|&r| r > 0)
            .ok_or_else(|| unsupported("unknown sample rate".into()))?;
        check_rate(path, container_rate)?;
        let decoder = symphonia::default::get_codecs()
            .make(params, &DecoderOptions::default())
            .map_err(|e| unsupported(e.to_string()))?;
        Ok(AudioStream {
            path: path.to_path_buf(),
            track_id: track.id,
            container_rate,
            container_frames: params.n_frames,
            format,
            decoder,
            input: None,
            interleaved: None,
            mono: Vec::new(),
            decoded_frames: 0,
            ready: Vec::new(),
            emitted: 0,
            state: State::Decoding,
            refuse_truncated: false,
        })
    }

    /// Length in seconds at 16 kHz when the container states it (for
    /// progress bars), else `None`: the stated frame count converted the way
    /// the stream converts it, over [`SAMPLE_RATE`].
    pub fn duration(&self) -> Option<f64> {
        let frames = self.container_frames?;
        Some(output_len(frames, self.container_rate) as f64 / f64::from(SAMPLE_RATE))
    }

    fn decode_error(&self, reason: String) -> AudioError {
        AudioError::Decode {
            path: self.path.clone(),
            reason,
        }
    }

    /// Reads and decodes one packet into `ready`; at the end of the input,
    /// flushes the resampler and moves to [`State::Draining`].
    fn advance(&mut self) -> Result<(), AudioError> {
        let packet = match self.format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return self.finish()
            }
            // A new logical stream (chained Ogg): the first one is the file.
            Err(SymphoniaError::ResetRequired) => return self.finish(),
            Err(e) => return Err(self.decode_error(e.to_string())),
        };
        if packet.track_id() != self.track_id {
            return Ok(());
        }
        let audio = match self.decoder.decode(&packet) {
            Ok(a) => a,
            // A corrupt frame in a compressed stream: skip it, as players do.
            Err(SymphoniaError::DecodeError(_)) => return Ok(()),
            Err(e) => return Err(self.decode_error(e.to_string())),
        };
        let spec = *audio.spec();
        let channels = spec.channels.count();
        if audio.frames() == 0 {
            return Ok(());
        }
        if channels == 0 || spec.rate == 0 {
            let reason = format!("a packet of {channels} channels at {} Hz", spec.rate);
            return Err(self.decode_error(reason));
        }
        let needed = audio.frames() * channels;
        let interleaved = match &mut self.interleaved {
            Some(buffer) if buffer.capacity() >= needed => buffer,
            slot => slot.insert(SampleBuffer::new(audio.capacity() as u64, spec)),
        };
        interleaved.copy_interleaved_ref(audio);
        downmix(interleaved.samples(), channels, &mut self.mono);
        let start = self.decoded_frames as f64 / f64::from(spec.rate);
        refuse_non_finite(&self.path, &self.mono, start, spec.rate)?;
        self.decoded_frames += self.mono.len() as u64;

        let input = match &mut self.input {
            Some(input) if input.rate == spec.rate => input,
            Some(input) => {
                let reason = format!(
                    "the sample rate changes mid-stream ({} Hz, then {} Hz)",
                    input.rate, spec.rate
                );
                return Err(self.decode_error(reason));
            }
            None => {
                let resampler = if spec.rate == SAMPLE_RATE {
                    None
                } else {
                    let r = StreamResampler::new(spec.rate).map_err(|e| self.decode_error(e))?;
                    Some(r)
                };
                self.input.insert(Input {
                    rate: spec.rate,
                    resampler,
                })
            }
        };
        match &mut input.resampler {
            Some(resampler) => resampler.push(&self.mono, &mut self.ready),
            None => {
                self.ready.extend_from_slice(&self.mono);
                Ok(())
            }
        }
        .map_err(|e| self.decode_error(e))
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        self.state = State::Draining;
        self.check_truncation()?;
        if let Some(resampler) = self.input.as_mut().and_then(|i| i.resampler.as_mut()) {
            resampler
                .finish(&mut self.ready)
                .map_err(|e| self.decode_error(e))?;
        }
        // Nothing more will be decoded: let the scratch buffers go.
        self.input = None;
        self.interleaved = None;
        self.mono = Vec::new();
        Ok(())
    }
}

impl AudioStream {
    /// A file that ends well before the length its header states (a cut
    /// download, a recording that was killed) is transcribed as far as it
    /// goes, but not silently, or refused (see
    /// [`AudioStream::refuse_truncated`]). Small differences are estimates
    /// of compressed formats, not truncation.
    fn check_truncation(&self) -> Result<(), AudioError> {
        let Some(declared) = self.container_frames else {
            return Ok(());
        };
        let missing = declared.saturating_sub(self.decoded_frames);
        let rate = f64::from(self.container_rate.max(1));
        if missing as f64 / rate <= TRUNCATION_SECONDS || missing * 50 <= declared {
            return Ok(());
        }
        let error = AudioError::Truncated {
            path: self.path.clone(),
            ends: self.decoded_frames as f64 / rate,
            states: declared as f64 / rate,
        };
        if self.refuse_truncated {
            return Err(error);
        }
        tracing::warn!("{error}; transcribing what is there");
        Ok(())
    }
}

/// Audio missing at the end beyond which a file counts as truncated (and
/// beyond 2 % of its stated length).
const TRUNCATION_SECONDS: f64 = 1.0;

impl Iterator for AudioStream {
    type Item = Result<Vec<f32>, AudioError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.state {
                State::Done => return None,
                State::Decoding if self.ready.len() < BLOCK_SAMPLES => {
                    if let Err(e) = self.advance() {
                        self.state = State::Done;
                        self.ready = Vec::new();
                        return Some(Err(e));
                    }
                }
                State::Draining if self.ready.is_empty() => {
                    self.state = State::Done;
                    return (self.emitted == 0).then(|| {
                        Err(AudioError::Empty {
                            path: self.path.clone(),
                        })
                    });
                }
                State::Decoding | State::Draining => {
                    let n = self.ready.len().min(BLOCK_SAMPLES);
                    self.emitted += n as u64;
                    return Some(Ok(self.ready.drain(..n).collect()));
                }
            }
        }
    }
}

impl FusedIterator for AudioStream {}

impl fmt::Debug for AudioStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioStream")
            .field("path", &self.path)
            .field("rate", &self.input.as_ref().map(|i| i.rate))
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

/// Refuses a sample rate below [`MIN_SAMPLE_RATE`].
fn check_rate(path: &Path, rate: u32) -> Result<(), AudioError> {
    if rate < MIN_SAMPLE_RATE {
        return Err(AudioError::SampleRate {
            path: path.to_path_buf(),
            rate,
        });
    }
    Ok(())
}

/// Averages interleaved channels into `mono` (replacing its contents).
pub(crate) fn downmix(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    mono.clear();
    if channels == 1 {
        mono.extend_from_slice(interleaved);
    } else {
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
    }
}

/// Output samples per input frame at `rate`.
fn ratio(rate: u32) -> f64 {
    f64::from(SAMPLE_RATE) / f64::from(rate)
}

/// Samples at [`SAMPLE_RATE`] for `frames` input frames at `rate`.
fn output_len(frames: u64, rate: u32) -> u64 {
    (frames as f64 * ratio(rate)).round() as u64
}

/// Band-limited sinc resampling from `rate` to [`SAMPLE_RATE`], fed piece
/// by piece, giving what one pass over the whole input gives: the input cut
/// into [`RESAMPLER_CHUNK`]-frame chunks, the last one zero-padded, zero
/// chunks until the filter's delayed tail is out, the first
/// `output_delay()` samples dropped and `output_len(n)` samples kept.
pub(crate) struct StreamResampler {
    sinc: SincFixedIn<f32>,
    rate: u32,
    delay: u64,
    /// Input frames not yet a whole chunk (fewer than a chunk between calls).
    pending: Vec<f32>,
    /// Output of one resampler call.
    scratch: Vec<f32>,
    frames_in: u64,
    /// Everything the filter has put out, the delay included.
    produced: u64,
    /// Output past the delay that the input so far does not yet prove to be
    /// within the final length.
    held: Vec<f32>,
    released: u64,
}

/// The band-limited sinc interpolation every resampled input goes through.
pub fn sinc_parameters() -> SincInterpolationParameters {
    SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Linear,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    }
}

impl StreamResampler {
    pub(crate) fn new(rate: u32) -> Result<Self, String> {
        let sinc = SincFixedIn::<f32>::new(ratio(rate), 1.0, sinc_parameters(), RESAMPLER_CHUNK, 1)
            .map_err(|e| e.to_string())?;
        Ok(StreamResampler {
            delay: sinc.output_delay() as u64,
            scratch: vec![0.0; sinc.output_frames_max()],
            pending: Vec::with_capacity(RESAMPLER_CHUNK),
            sinc,
            rate,
            frames_in: 0,
            produced: 0,
            held: Vec::new(),
            released: 0,
        })
    }

    /// Feeds `input`; appends to `out` the output now known to be final.
    pub(crate) fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        self.frames_in += input.len() as u64;
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while self.pending.len() - start >= RESAMPLER_CHUNK {
            self.process(start)?;
            start += RESAMPLER_CHUNK;
        }
        self.pending.drain(..start);
        // The final length is at least what the input so far gives.
        self.release(output_len(self.frames_in, self.rate), out);
        Ok(())
    }

    /// Ends the input: pads and flushes, appends the rest of the output.
    pub(crate) fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), String> {
        if self.frames_in == 0 {
            return Ok(());
        }
        let total = output_len(self.frames_in, self.rate);
        self.pending.resize(RESAMPLER_CHUNK, 0.0);
        self.process(0)?;
        self.pending.fill(0.0);
        while self.produced < total + self.delay {
            self.process(0)?;
        }
        self.release(total, out);
        self.held = Vec::new();
        Ok(())
    }

    /// Runs the filter over `pending[start..start + RESAMPLER_CHUNK]`.
    fn process(&mut self, start: usize) -> Result<(), String> {
        let chunk = &self.pending[start..start + RESAMPLER_CHUNK];
        let (_, n) = self
            .sinc
            .process_into_buffer(&[chunk], std::slice::from_mut(&mut self.scratch), None)
            .map_err(|e| e.to_string())?;
        let skip = self.delay.saturating_sub(self.produced).min(n as u64) as usize;
        self.held.extend_from_slice(&self.scratch[skip..n]);
        self.produced += n as u64;
        Ok(())
    }

    /// Moves held output to `out` up to `limit` samples released in all.
    fn release(&mut self, limit: u64, out: &mut Vec<f32>) {
        let n = (limit.saturating_sub(self.released) as usize).min(self.held.len());
        out.extend(self.held.drain(..n));
        self.released += n as u64;
    }
}
