//! Audio input against references built here: samples read with hound,
//! synthetic signals written in other rates, encodings and channel counts,
//! and a whole-buffer resampling done directly with rubato.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use asr_pipeline::stages::audio::{
    load_audio, sinc_parameters, AudioError, AudioStream, BLOCK_SAMPLES, SAMPLE_RATE,
};
use rubato::{Resampler, SincFixedIn};

mod raw_wav;
use raw_wav::write_raw_wav;

fn shared_audio(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/data/{name} not present");
        None
    }
}

/// Writes `frames` frames at `rate`; `signal(n, channel)` in [-1, 1] gives
/// each sample, stored as 32-bit float or 24-bit integer.
fn write_wav(
    path: &Path,
    rate: u32,
    channels: u16,
    float: bool,
    frames: usize,
    signal: impl Fn(usize, usize) -> f64,
) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 24 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..frames {
        for c in 0..channels as usize {
            let s = signal(n, c);
            if float {
                w.write_sample(s as f32).unwrap();
            } else {
                w.write_sample((s * 8_388_607.0) as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

/// Writes `seconds` of a `freq` Hz tone at `rate`, one amplitude per channel.
fn write_tone(path: &Path, rate: u32, amplitudes: &[f64], freq: f64, seconds: f64, float: bool) {
    let frames = (rate as f64 * seconds) as usize;
    write_wav(
        path,
        rate,
        amplitudes.len() as u16,
        float,
        frames,
        |n, c| amplitudes[c] * (2.0 * PI * freq * n as f64 / rate as f64).sin(),
    );
}

/// A deterministic noise sample in [-1, 1).
fn noise(n: usize) -> f64 {
    let x = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 40) as f64 / (1u64 << 23) as f64 - 1.0
}

/// The samples of a WAV file as f32 (integers scaled by 2^(bits-1)),
/// channels averaged, and its rate.
fn read_wav_mono(path: &Path) -> (Vec<f32>, u32) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => {
            let scale = (1u32 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.unwrap() as f32 / scale)
                .collect()
        }
    };
    let channels = spec.channels as usize;
    let mono = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    (mono, spec.sample_rate)
}

/// The naive whole-buffer resampling to 16 kHz: rubato over the whole input
/// in 4096-frame chunks, the tail zero-padded, the filter flushed, its delay
/// trimmed and `round(n * 16000 / rate)` samples kept.
fn reference_resample(mono: &[f32], rate: u32) -> Vec<f32> {
    if rate == SAMPLE_RATE {
        return mono.to_vec();
    }
    let params = sinc_parameters();
    let ratio = f64::from(SAMPLE_RATE) / f64::from(rate);
    let mut resampler = SincFixedIn::<f32>::new(ratio, 1.0, params, 4096, 1).unwrap();
    let delay = resampler.output_delay();
    let expected = (mono.len() as f64 * ratio).round() as usize;
    let mut out = Vec::new();
    let mut chunks = mono.chunks_exact(4096);
    for chunk in &mut chunks {
        out.extend_from_slice(&resampler.process(&[chunk], None).unwrap()[0]);
    }
    let flush = |r: &mut SincFixedIn<f32>| r.process_partial::<&[f32]>(None, None).unwrap();
    // rubato refuses an empty partial chunk; zero padding is the same as none.
    let tail = match chunks.remainder() {
        [] => flush(&mut resampler),
        rest => resampler.process_partial(Some(&[rest]), None).unwrap(),
    };
    out.extend_from_slice(&tail[0]);
    while out.len() < expected + delay {
        out.extend_from_slice(&flush(&mut resampler)[0]);
    }
    out[delay..delay + expected].to_vec()
}

/// Every block of `path`'s stream, checked on the way: non-empty, at most
/// [`BLOCK_SAMPLES`] long, and only the last one shorter.
fn stream_blocks(path: &Path) -> Vec<Vec<f32>> {
    let blocks: Vec<Vec<f32>> = AudioStream::open(path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let Some((last, full)) = blocks.split_last() else {
        panic!("{}: no blocks", path.display());
    };
    assert!(
        !last.is_empty() && last.len() <= BLOCK_SAMPLES,
        "{}",
        last.len()
    );
    assert!(full.iter().all(|b| b.len() == BLOCK_SAMPLES));
    blocks
}

#[test]
fn a_long_stereo_24bit_wav_streams_to_the_whole_buffer_resampling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    let rate = 22_050;
    let frames = 70 * rate as usize + 123;
    // Different content per channel: a sweeping tone left, noise right.
    write_wav(&path, rate, 2, false, frames, |n, c| {
        let t = n as f64 / rate as f64;
        match c {
            0 => 0.7 * (2.0 * PI * (200.0 + 20.0 * t) * t).sin(),
            _ => 0.3 * noise(n),
        }
    });
    let (mono, _) = read_wav_mono(&path);
    let reference = reference_resample(&mono, rate);
    assert_eq!(
        reference.len(),
        (frames as f64 * 16_000.0 / 22_050.0).round() as usize
    );

    let blocks = stream_blocks(&path);
    assert!(blocks.len() >= 70, "{} blocks", blocks.len());
    let streamed = blocks.concat();
    assert_eq!(streamed.len(), reference.len());
    assert!(
        streamed == reference,
        "streamed samples differ from the reference"
    );
    assert_eq!(load_audio(&path).unwrap(), streamed);

    let duration = AudioStream::open(&path).unwrap().duration().unwrap();
    assert_eq!(duration, streamed.len() as f64 / 16_000.0);
    assert!(
        (duration - frames as f64 / rate as f64).abs() < 1e-4,
        "{duration}"
    );
}

#[test]
fn lengths_at_resampler_chunk_edges_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    // 4096 frames is one resampler chunk: whole multiples leave no tail.
    for frames in [1, 100, 4096, 3 * 4096, 3 * 4096 + 1, 5 * 4096 - 1] {
        let path = dir.path().join(format!("edge-{frames}.wav"));
        write_wav(&path, 22_050, 1, true, frames, |n, _| 0.5 * noise(n));
        let (mono, rate) = read_wav_mono(&path);
        assert_eq!(
            stream_blocks(&path).concat(),
            reference_resample(&mono, rate),
            "{frames} frames"
        );
    }
}

#[test]
fn a_16khz_mono_wav_streams_sample_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mono16k.wav");
    let frames = 3 * BLOCK_SAMPLES + 77;
    write_wav(&path, SAMPLE_RATE, 1, false, frames, |n, _| noise(n));
    let (reference, _) = read_wav_mono(&path);
    let blocks = stream_blocks(&path);
    assert_eq!(blocks.len(), 4);
    assert_eq!(blocks.concat(), reference);
    let duration = AudioStream::open(&path).unwrap().duration();
    assert_eq!(duration, Some(frames as f64 / 16_000.0));
}

#[test]
fn a_16khz_mono_wav_is_read_sample_exact() {
    let Some(path) = shared_audio("audio/jfk.wav") else {
        return;
    };
    let reference: Vec<f32> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect();
    let samples = load_audio(&path).unwrap();
    assert_eq!(samples.len(), 176_000);
    assert_eq!(samples, reference);
    assert_eq!(stream_blocks(&path).concat(), reference);
    assert_eq!(AudioStream::open(&path).unwrap().duration(), Some(11.0));
}

/// Amplitude of `freq` in `x` (a single-bin DFT).
fn tone_amplitude(x: &[f32], freq: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let a = 2.0 * PI * freq * n as f64 / SAMPLE_RATE as f64;
        re += v as f64 * a.cos();
        im += v as f64 * a.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

#[test]
fn other_rates_encodings_and_channel_counts_become_16khz_mono() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, float) in [
        (44_100, false),
        (22_050, true),
        (48_000, false),
        (8_000, true),
    ] {
        let path = dir.path().join(format!("tone-{rate}.wav"));
        // Stereo at 0.6 and 0.2: the mono mix has amplitude 0.4.
        write_tone(&path, rate, &[0.6, 0.2], 440.0, 2.0, float);
        let x = load_audio(&path).unwrap();
        assert_eq!(x.len(), 32_000, "{rate} Hz: 2 s at 16 kHz");
        // Skip the edges, where the resampler's filter sees the signal start.
        let amp = tone_amplitude(&x[1600..30_400], 440.0);
        assert!(
            (amp - 0.4).abs() < 2e-3,
            "{rate} Hz: 440 Hz amplitude {amp}"
        );
        let off = tone_amplitude(&x[1600..30_400], 1000.0);
        assert!(off < 1e-3, "{rate} Hz: energy at 1 kHz {off}");
    }
}

/// Rate and samples per channel from the STREAMINFO block of a FLAC file,
/// read here byte by byte.
fn flac_streaminfo(path: &Path) -> (u32, u64) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"fLaC");
    assert_eq!(bytes[4] & 0x7f, 0, "STREAMINFO comes first");
    // After the block header: block and frame sizes (10 bytes), then 20 bits
    // of rate, 3 of channels, 5 of bits per sample, 36 of total samples.
    let info = u64::from_be_bytes(bytes[18..26].try_into().unwrap());
    ((info >> 44) as u32, info & ((1 << 36) - 1))
}

#[test]
fn compressed_formats_decode() {
    let Some(mp3) = shared_audio("audio/hotwords.mp3") else {
        return;
    };
    let x = load_audio(&mp3).unwrap();
    assert!(
        x.len() > SAMPLE_RATE as usize,
        "more than a second of audio"
    );
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(peak > 0.05 && peak <= 1.0, "peak {peak}");
    assert_eq!(stream_blocks(&mp3).concat(), x);
    // The frame count the MP3 stream states, resampled, is what decodes.
    let duration = AudioStream::open(&mp3).unwrap().duration();
    assert_eq!(duration, Some(x.len() as f64 / 16_000.0));

    let Some(flac) =
        shared_audio("librispeech/LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac")
    else {
        return;
    };
    let (rate, frames) = flac_streaminfo(&flac);
    assert_eq!(rate, SAMPLE_RATE);
    let x = stream_blocks(&flac).concat();
    assert_eq!(x.len() as u64, frames);
    assert_eq!(load_audio(&flac).unwrap(), x);
    let duration = AudioStream::open(&flac).unwrap().duration();
    assert_eq!(duration, Some(frames as f64 / 16_000.0));
}

#[test]
fn missing_and_non_audio_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    let err = load_audio(&missing).unwrap_err();
    assert!(
        matches!(err, AudioError::Open { .. }) && err.to_string().contains("missing.wav"),
        "{err}"
    );
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "this is not audio").unwrap();
    let err = load_audio(&text).unwrap_err();
    assert!(
        matches!(err, AudioError::Unsupported { .. }) && err.to_string().contains("notes.wav"),
        "{err}"
    );
    let empty = dir.path().join("empty.wav");
    write_tone(&empty, 16_000, &[0.5], 440.0, 0.0, false);
    let err = load_audio(&empty).unwrap_err();
    assert!(
        matches!(err, AudioError::Empty { .. }) && err.to_string().contains("empty.wav"),
        "{err}"
    );
    // The stream of an empty file says so once, then ends.
    let mut stream = AudioStream::open(&empty).unwrap();
    assert!(matches!(stream.next(), Some(Err(AudioError::Empty { .. }))));
    assert!(stream.next().is_none());
}

#[test]
fn sample_rates_below_the_minimum_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [0, 1, 999] {
        let path = dir.path().join(format!("rate-{rate}.wav"));
        write_raw_wav(&path, rate, 1600);
        let err = AudioStream::open(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: a sample rate of {rate} Hz, below the 1000 Hz minimum",
                path.display()
            )
        );
    }
    let ok = dir.path().join("rate-1000.wav");
    write_raw_wav(&ok, 1000, 1600);
    assert_eq!(load_audio(&ok).unwrap().len(), 1600 * 16);
}

#[test]
fn non_finite_float_samples_are_an_error_naming_the_file_and_the_time() {
    let dir = tempfile::tempdir().unwrap();
    type Signal = fn(usize) -> f64;
    let cases: [(&str, u32, Signal, &str); 3] = [
        ("nan.wav", 16_000, |_| f64::NAN, "0.00"),
        ("minus-inf.wav", 44_100, |_| f64::NEG_INFINITY, "0.00"),
        // One NaN every 1000 samples, the first at 0.05 s.
        (
            "sparse-nan.wav",
            16_000,
            |n| if n % 1000 == 800 { f64::NAN } else { 0.1 },
            "0.05",
        ),
    ];
    for (name, rate, signal, at) in cases {
        let path = dir.path().join(name);
        write_wav(&path, rate, 1, true, rate as usize, |n, _| signal(n));
        let err = load_audio(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: non-finite samples (NaN or infinity) at {at} s",
                path.display()
            )
        );
    }
}
