//! Audio input: any container/codec symphonia reads (WAV of every common
//! encoding, FLAC, MP3, Ogg Vorbis, MP4/M4A with AAC or ALAC) → mono f32 at
//! 16 kHz, channels averaged, resampled with a windowed-sinc resampler.

use std::fs::File;
use std::path::{Path, PathBuf};

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The rate every model in this project consumes.
pub const SAMPLE_RATE: u32 = 16_000;

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
}

/// Decoded audio before resampling: interleaved channels at `rate`.
struct Decoded {
    samples: Vec<f32>,
    channels: usize,
    rate: u32,
}

/// Reads `path` as mono f32 samples at [`SAMPLE_RATE`].
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    let decoded = decode(path)?;
    let mono = downmix(&decoded.samples, decoded.channels);
    if mono.is_empty() {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    resample(&mono, decoded.rate, SAMPLE_RATE).map_err(|reason| AudioError::Decode {
        path: path.to_path_buf(),
        reason,
    })
}

fn decode(path: &Path) -> Result<Decoded, AudioError> {
    let unsupported = |reason: String| AudioError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    let decode_err = |reason: String| AudioError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|error| AudioError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| unsupported(e.to_string()))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unsupported("no audio track".into()))?;
    let track_id = track.id;
    let rate = track
        .codec_params
        .sample_rate
        .ok_or_else(|| unsupported("unknown sample rate".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| unsupported(e.to_string()))?;
    let mut samples = Vec::new();
    let mut channels = track.codec_params.channels.map_or(0, |c| c.count());
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(decode_err(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(a) => a,
            // A corrupt frame in a compressed stream: skip it, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(decode_err(e.to_string())),
        };
        let spec = *audio.spec();
        channels = spec.channels.count();
        let mut buffer = SampleBuffer::<f32>::new(audio.capacity() as u64, spec);
        buffer.copy_interleaved_ref(audio);
        samples.extend_from_slice(buffer.samples());
    }
    if channels == 0 {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Decoded {
        samples,
        channels,
        rate,
    })
}

/// Averages interleaved channels.
fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// Band-limited sinc resampling from `from` Hz to `to` Hz.
fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if from == to {
        return Ok(samples.to_vec());
    }
    let params = SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Linear,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    };
    const CHUNK: usize = 4096;
    let ratio = f64::from(to) / f64::from(from);
    let mut resampler =
        SincFixedIn::<f32>::new(ratio, 1.0, params, CHUNK, 1).map_err(|e| e.to_string())?;
    let expected = (samples.len() as f64 * ratio).round() as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(expected + delay + CHUNK);
    let mut chunks = samples.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        out.extend_from_slice(
            &resampler
                .process(&[chunk], None)
                .map_err(|e| e.to_string())?[0],
        );
    }
    out.extend_from_slice(
        &resampler
            .process_partial(Some(&[chunks.remainder()]), None)
            .map_err(|e| e.to_string())?[0],
    );
    // Flush the filter until the delayed tail is out.
    while out.len() < expected + delay {
        out.extend_from_slice(
            &resampler
                .process_partial::<&[f32]>(None, None)
                .map_err(|e| e.to_string())?[0],
        );
    }
    Ok(out[delay..delay + expected].to_vec())
}
