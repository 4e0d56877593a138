//! Live audio for streaming recognition: the default microphone, standard
//! input or a file, each read by a thread of its own that delivers 16 kHz
//! mono samples as they come, so every source goes through one code path.
//!
//! The reader hands blocks to a bounded queue: a reader faster than its
//! consumer (a file read unpaced) waits for room instead of holding the
//! whole recording, and a microphone whose consumer falls behind by more
//! than the queue holds loses audio with a warning rather than memory.

use std::collections::VecDeque;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, ReadOnlySource};
use symphonia::default::formats::WavReader;

use crate::panic_guard::catch_panic;
use crate::stages::audio::{
    downmix, AudioError, AudioStream, StreamResampler, MIN_SAMPLE_RATE, SAMPLE_RATE,
};

/// Samples per block of a live source (microphone, standard input, a file
/// paced at real time): 100 ms, short enough not to add to the latency.
/// Microphone and standard input hand over what they hold from half a
/// block on: a resampler's output comes in pieces of 85 to 93 ms at 48 and
/// 44.1 kHz, which waiting for a whole block would turn into 170 to 186.
pub const LIVE_BLOCK_SAMPLES: usize = SAMPLE_RATE as usize / 10;

/// Whether a live reader holding `samples` hands them over.
fn block_ready(samples: &[f32]) -> bool {
    samples.len() >= LIVE_BLOCK_SAMPLES / 2
}

/// Samples queued between reader and consumer at most: 30 s.
const QUEUE_SAMPLES: usize = 30 * SAMPLE_RATE as usize;

/// Where live audio comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The default input device (cpal: ALSA on Linux, CoreAudio on macOS);
    /// needs the `microphone` cargo feature.
    Microphone,
    /// Standard input: a WAV stream (any rate, channel count and PCM
    /// encoding, also the unknown-length header ffmpeg writes to a pipe),
    /// or raw s16le 16 kHz mono when the bytes do not start with "RIFF".
    Stdin,
    /// A file (any format [`AudioStream`] opens), as fast as the consumer
    /// reads it, or paced at real time: each block is released when its
    /// last sample would have been spoken.
    File { path: PathBuf, realtime: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file cannot be opened or decoded (the error names it).
    #[error(transparent)]
    File(#[from] AudioError),
    #[error("standard input: {0}")]
    Stdin(String),
    #[error(
        "this build has no microphone support: rebuild with \
         `cargo build --release --features microphone` (on Linux this needs libasound2-dev), \
         or pipe audio through standard input, e.g. `ffmpeg -i INPUT -f wav - | pipeline stream ...`"
    )]
    NoMicrophoneSupport,
    #[error(
        "no audio input device found; connect a microphone, or pipe audio through \
         standard input, e.g. `ffmpeg -i INPUT -f wav - | pipeline stream ...`"
    )]
    NoInputDevice,
    #[error("audio input device \"{device}\": {reason}")]
    Device { device: String, reason: String },
    #[error("cannot start the audio reader thread: {0}")]
    Thread(io::Error),
    #[error("internal error while reading {source_name}: {message} (a bug: please report it)")]
    Internal {
        source_name: String,
        message: String,
    },
}

/// A live audio source and the thread that reads it.
///
/// `Send` and `Sync`: one thread may wait in [`Source::next_available`]
/// while another (a Ctrl-C handler) calls [`Source::stop`]. Dropping it
/// stops the reader.
pub struct Source {
    shared: Arc<Shared>,
}

impl Source {
    /// Opens `kind` and starts its reader. Errors that show at once (a
    /// missing file, no input device) come back here; later ones from
    /// [`Source::next_available`].
    pub fn start(kind: SourceKind) -> Result<Source, SourceError> {
        let shared = Arc::new(Shared::default());
        let sink = Sink(shared.clone());
        match kind {
            SourceKind::File { path, realtime } => {
                let stream = AudioStream::open(&path)?;
                let name = path.display().to_string();
                spawn(sink, name, move |sink| read_file(stream, realtime, sink))?;
            }
            SourceKind::Stdin => spawn(sink, "standard input".into(), |sink| {
                read_stdin(io::stdin(), &mut |block| sink.push(block))
            })?,
            SourceKind::Microphone => microphone::start(sink)?,
        }
        Ok(Source { shared })
    }

    /// Waits until at least one block is there, or the end of the stream
    /// or an error, then returns everything queued so far, concatenated.
    /// `Ok(None)` at the end of the stream, and after [`Source::stop`] once
    /// what was queued has been returned. An error is returned once, after
    /// the samples read before it; then `Ok(None)`.
    pub fn next_available(&self) -> Result<Option<Vec<f32>>, SourceError> {
        let mut queue = self.shared.lock();
        loop {
            if !queue.blocks.is_empty() {
                let mut samples = Vec::with_capacity(queue.samples);
                for block in queue.blocks.drain(..) {
                    samples.extend_from_slice(&block);
                }
                queue.samples = 0;
                queue.delivered += samples.len() as u64;
                self.shared.changed.notify_all();
                return Ok(Some(samples));
            }
            if queue.stopped {
                return Ok(None);
            }
            if let Some(error) = queue.error.take() {
                return Err(error);
            }
            if queue.ended {
                return Ok(None);
            }
            queue = self.shared.wait(queue);
        }
    }

    /// Stops the reader (Ctrl-C): [`Source::next_available`] returns what
    /// is queued and then `Ok(None)`, also to a caller already waiting.
    pub fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
    }

    /// Seconds of audio returned by [`Source::next_available`] so far.
    pub fn seconds_read(&self) -> f64 {
        self.shared.lock().delivered as f64 / f64::from(SAMPLE_RATE)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The queue between a reader thread and its [`Source`].
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a block, the end or a stop arrives, and when the
    /// consumer makes room.
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    blocks: VecDeque<Vec<f32>>,
    samples: usize,
    delivered: u64,
    /// The reader is done; `error` says why when it failed.
    ended: bool,
    error: Option<SourceError>,
    stopped: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The lock is never held across code that can panic.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, queue: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(queue).unwrap_or_else(|e| e.into_inner())
    }
}

/// The reader thread's end of the queue.
struct Sink(Arc<Shared>);

impl Sink {
    /// Queues `block`, waiting while the queue is full; `false` once the
    /// source is stopped (the reader should end).
    fn push(&self, block: Vec<f32>) -> bool {
        let mut queue = self.0.lock();
        while queue.samples >= QUEUE_SAMPLES && !queue.stopped {
            queue = self.0.wait(queue);
        }
        self.enqueue(queue, block)
    }

    /// Queues `block` unless the queue is full (then `Some(false)`: the
    /// block is dropped); `None` once the source is stopped. For a reader
    /// that cannot wait: a device delivers audio whether read or not.
    #[cfg(feature = "microphone")]
    fn offer(&self, block: Vec<f32>) -> Option<bool> {
        let queue = self.0.lock();
        if queue.samples >= QUEUE_SAMPLES && !queue.stopped {
            return Some(false);
        }
        self.enqueue(queue, block).then_some(true)
    }

    fn enqueue(&self, mut queue: MutexGuard<'_, Queue>, block: Vec<f32>) -> bool {
        if queue.stopped {
            return false;
        }
        if !block.is_empty() {
            queue.samples += block.len();
            queue.blocks.push_back(block);
            self.0.changed.notify_all();
        }
        true
    }

    /// Waits until `deadline`; `false` when the source is stopped first.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut queue = self.0.lock();
        loop {
            let now = Instant::now();
            if queue.stopped || now >= deadline {
                return !queue.stopped;
            }
            queue = match self.0.changed.wait_timeout(queue, deadline - now) {
                Ok((queue, _)) => queue,
                Err(e) => e.into_inner().0,
            };
        }
    }

    #[cfg(feature = "microphone")]
    fn is_stopped(&self) -> bool {
        self.0.lock().stopped
    }

    fn finish(self, result: Result<(), SourceError>) {
        let mut queue = self.0.lock();
        queue.ended = true;
        queue.error = result.err();
        self.0.changed.notify_all();
    }
}

/// Runs `read` on a thread of its own; its result, or its panic as an
/// error naming `source_name`, ends the stream.
fn spawn(
    sink: Sink,
    source_name: String,
    read: impl FnOnce(&Sink) -> Result<(), SourceError> + Send + 'static,
) -> Result<(), SourceError> {
    thread::Builder::new()
        .name("audio-source".into())
        .spawn(move || {
            let result = catch_panic(|| read(&sink)).unwrap_or_else(|message| {
                Err(SourceError::Internal {
                    source_name,
                    message,
                })
            });
            sink.finish(result);
        })
        .map(drop)
        .map_err(SourceError::Thread)
}

/// Reads a file's blocks into `sink`, unpaced (blocks of one second) or at
/// real time (blocks of [`LIVE_BLOCK_SAMPLES`], each released when its
/// last sample would have been spoken).
fn read_file(stream: AudioStream, realtime: bool, sink: &Sink) -> Result<(), SourceError> {
    let start = Instant::now();
    let mut released = 0u64;
    for block in stream {
        let block = block?;
        if !realtime {
            if !sink.push(block) {
                break;
            }
            continue;
        }
        for piece in block.chunks(LIVE_BLOCK_SAMPLES) {
            released += piece.len() as u64;
            let due = start + Duration::from_secs_f64(released as f64 / f64::from(SAMPLE_RATE));
            if !sink.sleep_until(due) || !sink.push(piece.to_vec()) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads standard input (or any byte stream in its format) as 16 kHz mono
/// blocks of about [`LIVE_BLOCK_SAMPLES`], handing each to `emit` until it
/// returns `false`: a WAV stream when the bytes start with "RIFF", else
/// raw s16le at 16 kHz mono. Input that ends early ends the stream with
/// what was read and a warning; input without any audio is an error.
fn read_stdin<R>(mut input: R, emit: &mut dyn FnMut(Vec<f32>) -> bool) -> Result<(), SourceError>
where
    R: Read + Send + Sync + 'static,
{
    let mut magic = Vec::with_capacity(4);
    (&mut input)
        .take(4)
        .read_to_end(&mut magic)
        .map_err(|e| SourceError::Stdin(e.to_string()))?;
    if magic == b"RIFF" {
        read_wav(Cursor::new(magic).chain(input), emit)
    } else {
        read_raw(magic, input, emit)
    }
}

/// Raw little-endian 16-bit mono at 16 kHz, `head` being its first bytes.
fn read_raw(
    head: Vec<u8>,
    mut input: impl Read,
    emit: &mut dyn FnMut(Vec<f32>) -> bool,
) -> Result<(), SourceError> {
    // Bytes not converted yet: at most the first byte of a sample.
    let mut bytes = head;
    let mut buffer = vec![0u8; 2 * LIVE_BLOCK_SAMPLES];
    let mut out = Vec::with_capacity(LIVE_BLOCK_SAMPLES);
    let mut samples = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SourceError::Stdin(e.to_string())),
        };
        bytes.extend_from_slice(&buffer[..n]);
        let whole = bytes.len() & !1;
        out.extend(
            bytes[..whole]
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
        );
        samples += whole as u64 / 2;
        bytes.drain(..whole);
        if n == 0 {
            break;
        }
        if block_ready(&out) && !emit(std::mem::take(&mut out)) {
            return Ok(());
        }
    }
    if !bytes.is_empty() {
        tracing::warn!(
            "standard input: ends in the middle of a 16-bit sample; the odd last byte is dropped"
        );
    }
    if samples == 0 {
        return Err(SourceError::Stdin(
            "no audio (empty, or not even one 16-bit sample)".into(),
        ));
    }
    emit(out);
    Ok(())
}

/// A WAV stream, possibly of unknown length (ffmpeg writing to a pipe
/// states sizes of 0xFFFFFFFF), decoded packet by packet.
fn read_wav<R>(input: R, emit: &mut dyn FnMut(Vec<f32>) -> bool) -> Result<(), SourceError>
where
    R: Read + Send + Sync + 'static,
{
    let bad = |e: SymphoniaError| SourceError::Stdin(format!("not a readable WAV stream ({e})"));
    let source = MediaSourceStream::new(Box::new(ReadOnlySource::new(input)), Default::default());
    let mut format = WavReader::try_new(source, &FormatOptions::default()).map_err(bad)?;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| SourceError::Stdin("a WAV stream without an audio track".into()))?;
    let params = track.codec_params.clone();
    let track_id = track.id;
    let rate = params
        .sample_rate
        .ok_or_else(|| SourceError::Stdin("a WAV stream of unknown sample rate".into()))?;
    if rate < MIN_SAMPLE_RATE {
        return Err(SourceError::Stdin(format!(
            "a sample rate of {rate} Hz, below the {MIN_SAMPLE_RATE} Hz minimum"
        )));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(bad)?;
    let resample_error = |e| SourceError::Stdin(format!("cannot resample {rate} Hz: {e}"));
    let mut converter = ToMono16k::new(rate).map_err(resample_error)?;
    let mut interleaved: Option<SampleBuffer<f32>> = None;
    let mut frames = 0u64;
    let mut out = Vec::with_capacity(2 * LIVE_BLOCK_SAMPLES);
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(bad(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let audio = decoder.decode(&packet).map_err(bad)?;
        let spec = *audio.spec();
        let needed = audio.frames() * spec.channels.count();
        let buffer = match &mut interleaved {
            Some(buffer) if buffer.capacity() >= needed => buffer,
            slot => slot.insert(SampleBuffer::new(audio.capacity() as u64, spec)),
        };
        buffer.copy_interleaved_ref(audio);
        let samples = buffer.samples();
        if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
            let frame = frames + (i / spec.channels.count()) as u64;
            return Err(SourceError::Stdin(format!(
                "non-finite samples (NaN or infinity) at {:.2} s",
                frame as f64 / f64::from(rate)
            )));
        }
        frames += (samples.len() / spec.channels.count()) as u64;
        converter
            .push(samples, spec.channels.count(), &mut out)
            .map_err(resample_error)?;
        if block_ready(&out) && !emit(std::mem::take(&mut out)) {
            return Ok(());
        }
    }
    if frames == 0 {
        return Err(SourceError::Stdin(
            "a WAV stream without audio samples".into(),
        ));
    }
    if let Some(declared) = declared_frames(&params).filter(|&n| frames < n) {
        tracing::warn!(
            "standard input: truncated: the audio ends at {:.1} s of the {:.1} s its header states",
            frames as f64 / f64::from(rate),
            declared as f64 / f64::from(rate)
        );
    }
    converter.finish(&mut out).map_err(resample_error)?;
    emit(out);
    Ok(())
}

/// The frames a WAV header states, `None` when it states none or the
/// unknown-length size 0xFFFFFFFF of a streamed WAV.
fn declared_frames(params: &symphonia::core::codecs::CodecParameters) -> Option<u64> {
    let frames = params.n_frames?;
    let bytes_per_frame =
        u64::from(params.bits_per_coded_sample?.div_ceil(8)) * params.channels?.count() as u64;
    let unknown = u64::from(u32::MAX) / bytes_per_frame.max(1);
    (frames != unknown).then_some(frames)
}

/// Interleaved samples at some rate → mono at [`SAMPLE_RATE`], piece by
/// piece, the way [`AudioStream`] converts a file. Errors are the
/// resampler's.
struct ToMono16k {
    resampler: Option<StreamResampler>,
    mono: Vec<f32>,
}

impl ToMono16k {
    fn new(rate: u32) -> Result<Self, String> {
        let resampler = (rate != SAMPLE_RATE)
            .then(|| StreamResampler::new(rate))
            .transpose()?;
        Ok(ToMono16k {
            resampler,
            mono: Vec::new(),
        })
    }

    fn push(
        &mut self,
        interleaved: &[f32],
        channels: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        downmix(interleaved, channels, &mut self.mono);
        match &mut self.resampler {
            Some(resampler) => resampler.push(&self.mono, out),
            None => {
                out.extend_from_slice(&self.mono);
                Ok(())
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), String> {
        match &mut self.resampler {
            Some(resampler) => resampler.finish(out),
            None => Ok(()),
        }
    }
}

#[cfg(not(feature = "microphone"))]
mod microphone {
    use super::{Sink, SourceError};

    pub(super) fn start(_sink: Sink) -> Result<(), SourceError> {
        Err(SourceError::NoMicrophoneSupport)
    }
}

#[cfg(feature = "microphone")]
mod microphone {
    //! The default input device through cpal, in its own configuration
    //! (often 44.1 or 48 kHz, stereo, i16 or f32), converted to 16 kHz mono.

    use std::sync::mpsc;
    use std::time::Duration;

    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    use cpal::{FromSample, SampleFormat, SizedSample};

    use super::{block_ready, spawn, Sink, SourceError, ToMono16k, LIVE_BLOCK_SAMPLES};

    /// What the device callback sends to the reader thread.
    type Capture = Result<Vec<f32>, String>;

    /// How often the reader thread looks whether it was stopped.
    const POLL: Duration = Duration::from_millis(50);

    /// Opens the default input device and starts capturing; errors of the
    /// device's setup come back here.
    pub(super) fn start(sink: Sink) -> Result<(), SourceError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        // A cpal stream may not leave the thread that made it (CoreAudio):
        // the reader thread opens the device, reports how that went, and
        // then converts what the device callback sends it.
        spawn(sink, "the microphone".into(), move |sink| {
            let (tx, rx) = mpsc::channel();
            let (device, stream, rate, channels) = match open(tx) {
                Ok(opened) => {
                    let _ = ready_tx.send(Ok(()));
                    opened
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            let result = capture(&rx, sink, &device, rate, channels);
            drop(stream);
            result
        })?;
        match ready_rx.recv() {
            Ok(result) => result,
            Err(_) => Err(SourceError::Internal {
                source_name: "the microphone".into(),
                message: "the reader thread ended before opening the device".into(),
            }),
        }
    }

    fn open(tx: mpsc::Sender<Capture>) -> Result<(String, cpal::Stream, u32, usize), SourceError> {
        let host = cpal::default_host();
        let device = host
            .default_input_device()
            .ok_or(SourceError::NoInputDevice)?;
        let name = device.to_string();
        let device_error = |reason: String| SourceError::Device {
            device: name.clone(),
            reason,
        };
        let supported = device
            .default_input_config()
            .map_err(|e| device_error(format!("no usable input configuration ({e})")))?;
        let config = supported.config();
        let stream = match supported.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, &config, tx),
            SampleFormat::F64 => build::<f64>(&device, &config, tx),
            SampleFormat::I8 => build::<i8>(&device, &config, tx),
            SampleFormat::I16 => build::<i16>(&device, &config, tx),
            SampleFormat::I32 => build::<i32>(&device, &config, tx),
            SampleFormat::I64 => build::<i64>(&device, &config, tx),
            SampleFormat::U8 => build::<u8>(&device, &config, tx),
            SampleFormat::U16 => build::<u16>(&device, &config, tx),
            SampleFormat::U32 => build::<u32>(&device, &config, tx),
            SampleFormat::U64 => build::<u64>(&device, &config, tx),
            other => {
                return Err(device_error(format!("unsupported sample format {other}")));
            }
        }
        .map_err(|e| device_error(format!("cannot open an input stream ({e})")))?;
        stream
            .play()
            .map_err(|e| device_error(format!("cannot start capturing ({e})")))?;
        tracing::info!(
            "capturing from \"{name}\": {} Hz, {} channel(s), {}",
            config.sample_rate,
            config.channels,
            supported.sample_format()
        );
        Ok((
            name,
            stream,
            config.sample_rate,
            usize::from(config.channels),
        ))
    }

    fn build<T>(
        device: &cpal::Device,
        config: &cpal::StreamConfig,
        tx: mpsc::Sender<Capture>,
    ) -> Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        let errors = tx.clone();
        device.build_input_stream(
            *config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                let samples = data.iter().map(|&s| s.to_sample::<f32>()).collect();
                let _ = tx.send(Ok(samples));
            },
            move |e| {
                let _ = errors.send(Err(e.to_string()));
            },
            None,
        )
    }

    /// Converts what the device sends until the source is stopped or the
    /// device fails; a queue left full by a slow consumer drops audio.
    fn capture(
        rx: &mpsc::Receiver<Capture>,
        sink: &Sink,
        device: &str,
        rate: u32,
        channels: usize,
    ) -> Result<(), SourceError> {
        let device_error = |reason| SourceError::Device {
            device: device.to_string(),
            reason,
        };
        let mut converter = ToMono16k::new(rate).map_err(device_error)?;
        let mut out = Vec::with_capacity(2 * LIVE_BLOCK_SAMPLES);
        let mut dropping = false;
        while !sink.is_stopped() {
            let captured = match rx.recv_timeout(POLL) {
                Ok(captured) => captured,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let samples = captured.map_err(device_error)?;
            converter
                .push(&samples, channels, &mut out)
                .map_err(device_error)?;
            if !block_ready(&out) {
                continue;
            }
            match sink.offer(std::mem::take(&mut out)) {
                None => break,
                Some(true) => dropping = false,
                Some(false) => {
                    if !dropping {
                        tracing::warn!(
                            "the recognizer is falling behind the microphone: dropping audio"
                        );
                    }
                    dropping = true;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stages::audio::load_audio;

    fn shared_audio(name: &str) -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/audio")
            .join(name);
        if path.is_file() {
            Some(path)
        } else {
            eprintln!("skipped: ../shared/data/audio/{name} not present");
            None
        }
    }

    /// Everything a source delivers until its end, and how many pieces.
    fn drain(source: &Source) -> (Vec<f32>, usize) {
        let mut samples = Vec::new();
        let mut pieces = 0;
        while let Some(piece) = source.next_available().unwrap() {
            assert!(!piece.is_empty());
            samples.extend_from_slice(&piece);
            pieces += 1;
        }
        (samples, pieces)
    }

    /// `frames` frames of a sweep at `rate` over `channels` channels as
    /// 16-bit WAV bytes, also written to `path`.
    fn wav_bytes(path: &Path, rate: u32, channels: u16, frames: usize) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for n in 0..frames {
            let t = n as f64 / f64::from(rate);
            for c in 0..channels {
                let s = (2.0 * std::f64::consts::PI * (220.0 + 300.0 * t) * t).sin()
                    * (0.5 - 0.2 * f64::from(c));
                writer.write_sample((s * 32767.0) as i16).unwrap();
            }
        }
        writer.finalize().unwrap();
        std::fs::read(path).unwrap()
    }

    /// What [`read_stdin`] makes of `bytes`, block by block.
    fn stdin_blocks(bytes: Vec<u8>) -> Result<Vec<Vec<f32>>, SourceError> {
        let mut blocks = Vec::new();
        read_stdin(Cursor::new(bytes), &mut |block| {
            blocks.push(block);
            true
        })?;
        Ok(blocks)
    }

    #[test]
    fn a_source_can_be_shared_with_a_ctrl_c_handler() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Source>();
    }

    #[test]
    fn an_unpaced_file_delivers_its_samples() {
        let Some(path) = shared_audio("jfk.wav") else {
            return;
        };
        let source = Source::start(SourceKind::File {
            path: path.clone(),
            realtime: false,
        })
        .unwrap();
        let (samples, _) = drain(&source);
        assert_eq!(samples, load_audio(&path).unwrap());
        assert_eq!(source.seconds_read(), samples.len() as f64 / 16000.0);
    }

    #[test]
    fn a_file_at_real_time_takes_its_duration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two-seconds.wav");
        wav_bytes(&path, 16000, 1, 32000);
        let start = Instant::now();
        let source = Source::start(SourceKind::File {
            path: path.clone(),
            realtime: true,
        })
        .unwrap();
        let (samples, pieces) = drain(&source);
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(samples, load_audio(&path).unwrap());
        assert!(elapsed >= 1.99, "2 s of audio delivered in {elapsed:.3} s");
        assert!(pieces >= 10, "{pieces} pieces");
    }

    #[test]
    fn stop_ends_the_stream_promptly() {
        let Some(path) = shared_audio("jfk.wav") else {
            return;
        };
        let source = Source::start(SourceKind::File {
            path,
            realtime: true,
        })
        .unwrap();
        source.next_available().unwrap().unwrap();
        let stopped = Instant::now();
        source.stop();
        // What was queued, then the end.
        while source.next_available().unwrap().is_some() {}
        assert!(stopped.elapsed() < Duration::from_millis(150));
        assert!(source.seconds_read() < 1.0);
    }

    #[test]
    fn stop_wakes_a_waiting_consumer() {
        let Some(path) = shared_audio("jfk.wav") else {
            return;
        };
        let source = Arc::new(
            Source::start(SourceKind::File {
                path,
                realtime: true,
            })
            .unwrap(),
        );
        let handler = source.clone();
        let stopper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(250));
            handler.stop();
        });
        drain(&source);
        stopper.join().unwrap();
        assert!(source.seconds_read() < 1.0);
    }

    #[test]
    fn a_wav_on_stdin_gives_what_the_file_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        let bytes = wav_bytes(&path, 44100, 2, 66150);
        let blocks = stdin_blocks(bytes).unwrap();
        // Live blocks: 50 to 100 ms each (the resampler's pieces).
        assert!(blocks[..blocks.len() - 1]
            .iter()
            .all(|b| (LIVE_BLOCK_SAMPLES / 2..=LIVE_BLOCK_SAMPLES).contains(&b.len())));
        assert_eq!(blocks.concat(), load_audio(&path).unwrap());
    }

    #[test]
    fn a_wav_of_unknown_length_is_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mono.wav");
        let mut bytes = wav_bytes(&path, 22050, 1, 30000);
        // What ffmpeg writes to a pipe: RIFF and data sizes 0xFFFFFFFF.
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            stdin_blocks(bytes).unwrap().concat(),
            load_audio(&path).unwrap()
        );
    }

    #[test]
    fn a_truncated_wav_ends_with_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mono.wav");
        let mut bytes = wav_bytes(&path, 16000, 1, 16000);
        bytes.truncate(bytes.len() / 2 + 1);
        let samples = stdin_blocks(bytes).unwrap().concat();
        let whole = load_audio(&path).unwrap();
        assert!((7000..=8000).contains(&samples.len()), "{}", samples.len());
        assert_eq!(samples, whole[..samples.len()]);
    }

    #[test]
    fn raw_stdin_is_s16le_at_16_khz() {
        let values: Vec<i16> = (0..4000).map(|n| (n * 17 - 30000) as i16).collect();
        let mut bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let expected: Vec<f32> = values.iter().map(|&v| f32::from(v) / 32768.0).collect();
        assert_eq!(stdin_blocks(bytes.clone()).unwrap().concat(), expected);
        // An odd byte count: the half sample at the end is dropped.
        bytes.push(0x7f);
        assert_eq!(stdin_blocks(bytes).unwrap().concat(), expected);
        // Fewer bytes than "RIFF".
        assert_eq!(
            stdin_blocks(vec![0x00, 0x40]).unwrap().concat(),
            vec![0.5f32]
        );
    }

    #[test]
    fn garbage_after_riff_is_an_error_naming_stdin() {
        let mut bytes = b"RIFF".to_vec();
        bytes.extend((0..2000u32).map(|n| (n.wrapping_mul(2654435761) >> 24) as u8));
        let error = stdin_blocks(bytes).unwrap_err().to_string();
        assert!(error.starts_with("standard input: "), "{error}");
    }

    #[test]
    fn empty_stdin_is_an_error() {
        let error = stdin_blocks(Vec::new()).unwrap_err().to_string();
        assert!(error.starts_with("standard input: no audio"), "{error}");
    }

    #[test]
    fn a_stopped_consumer_ends_the_stdin_reader() {
        let bytes = vec![0u8; 2 * 16000];
        let mut blocks = 0;
        read_stdin(Cursor::new(bytes), &mut |_| {
            blocks += 1;
            false
        })
        .unwrap();
        assert_eq!(blocks, 1);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error = Source::start(SourceKind::File {
            path: "/nonexistent/speech.wav".into(),
            realtime: false,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("/nonexistent/speech.wav"), "{error}");
    }

    #[cfg(not(feature = "microphone"))]
    #[test]
    fn without_the_feature_the_microphone_says_how_to_get_it() {
        let error = Source::start(SourceKind::Microphone)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("--features microphone"), "{error}");
        assert!(error.contains("standard input"), "{error}");
    }

    /// Whatever the machine has (here, no capture device), starting the
    /// microphone gives a source or an error, never a panic.
    #[cfg(feature = "microphone")]
    #[test]
    fn the_microphone_starts_or_says_why_not() {
        match Source::start(SourceKind::Microphone) {
            Ok(source) => source.stop(),
            Err(e) => eprintln!("{e}"),
        }
    }
}
