//! Audio input against references built here: samples read with hound,
//! synthetic tones written in other rates, encodings and channel counts.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use asr_pipeline::audio::{load_audio, AudioError, SAMPLE_RATE};

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
}

/// Writes `seconds` of a `freq` Hz tone at `rate`, one amplitude per channel.
fn write_tone(path: &Path, rate: u32, amplitudes: &[f64], freq: f64, seconds: f64, float: bool) {
    let spec = hound::WavSpec {
        channels: amplitudes.len() as u16,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 24 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..(rate as f64 * seconds) as usize {
        let s = (2.0 * PI * freq * n as f64 / rate as f64).sin();
        for a in amplitudes {
            if float {
                w.write_sample((a * s) as f32).unwrap();
            } else {
                w.write_sample((a * s * 8_388_607.0) as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
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
    let Some(flac) =
        shared_audio("librispeech/LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac")
    else {
        return;
    };
    assert!(load_audio(&flac).unwrap().len() > SAMPLE_RATE as usize);
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
    assert!(err.to_string().contains("empty.wav"), "{err}");
}
