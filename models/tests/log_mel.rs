//! Whisper's log-mel front end against independent references: openai-whisper's
//! published filterbank (`mel_filters.npz`) and a naive f64 DFT pipeline.

use std::f64::consts::PI;
use std::path::PathBuf;

use asr_models::features::{hann_window, mel_filterbank, LogMel};
use asr_models::whisper::constants::{HOP_LENGTH, N_FFT, SAMPLE_RATE};
use mlx::Array;

fn whisper_assets() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/whisper-assets");
    dir.join("mel_filters.npz").exists().then_some(dir)
}

#[test]
fn filterbank_matches_openai_whisper_mel_filters_npz() {
    let Some(dir) = whisper_assets() else {
        eprintln!("skipped: ../shared/data/whisper-assets/mel_filters.npz not present");
        return;
    };
    let file = std::fs::File::open(dir.join("mel_filters.npz")).unwrap();
    let mut npz = ndarray_npy::NpzReader::new(file).unwrap();
    for n_mels in [80usize, 128] {
        let reference: ndarray::Array2<f32> = npz.by_name(&format!("mel_{n_mels}")).unwrap();
        assert_eq!(reference.shape(), &[n_mels, N_FFT / 2 + 1]);
        let ours = mel_filterbank(SAMPLE_RATE as usize, N_FFT, n_mels);
        let max_err = ours
            .iter()
            .zip(reference.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 1e-7, "mel_{n_mels}: max abs error {max_err}");
    }
}

/// A deterministic test signal: a chirp plus a little pseudo-noise.
fn signal(len: usize) -> Vec<f32> {
    let mut state = 12345u32;
    (0..len)
        .map(|i| {
            let t = i as f64 / SAMPLE_RATE as f64;
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            let noise = (state >> 8) as f64 / (1u32 << 24) as f64 - 0.5;
            (0.5 * (2.0 * PI * (200.0 + 1500.0 * t) * t).sin() + 0.01 * noise) as f32
        })
        .collect()
}

/// The whole pipeline in f64 with a direct DFT: the reference for `LogMel`.
fn naive_log_mel(x: &[f32], n_mels: usize) -> Vec<f64> {
    let pad = N_FFT / 2;
    let n = x.len();
    let reflect = |i: isize| -> f64 {
        let j = if i < 0 {
            -i
        } else if i as usize >= n {
            2 * (n as isize - 1) - i
        } else {
            i
        };
        x[j as usize] as f64
    };
    let window = hann_window(N_FFT);
    let filters = mel_filterbank(SAMPLE_RATE as usize, N_FFT, n_mels);
    let n_freqs = N_FFT / 2 + 1;
    let frames = n / HOP_LENGTH; // 1 + n / hop, minus the dropped last frame
    let mut out = vec![0f64; frames * n_mels];
    for f in 0..frames {
        let power: Vec<f64> = (0..n_freqs)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (t, &w) in window.iter().enumerate() {
                    let s = reflect((f * HOP_LENGTH + t) as isize - pad as isize) * w as f64;
                    let angle = -2.0 * PI * (k * t) as f64 / N_FFT as f64;
                    re += s * angle.cos();
                    im += s * angle.sin();
                }
                re * re + im * im
            })
            .collect();
        for m in 0..n_mels {
            let e: f64 = (0..n_freqs)
                .map(|k| filters[m * n_freqs + k] as f64 * power[k])
                .sum();
            out[f * n_mels + m] = e.max(1e-10).log10();
        }
    }
    let max = out.iter().cloned().fold(f64::MIN, f64::max);
    out.iter()
        .map(|&v| (v.max(max - 8.0) + 4.0) / 4.0)
        .collect()
}

#[test]
fn log_mel_matches_a_naive_f64_dft_pipeline() {
    let x = signal(8000); // 0.5 s
    let mel = LogMel::new(80).unwrap();
    let ours = mel
        .forward(&Array::from_slice(&x, &[x.len() as i32]).unwrap())
        .unwrap();
    assert_eq!(ours.shape(), vec![(x.len() / HOP_LENGTH) as i32, 80]);
    let reference = naive_log_mel(&x, 80);
    let ours = ours.to_vec::<f32>().unwrap();
    let max_err = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    assert!(max_err < 1e-4, "max abs error {max_err}");
}

#[test]
fn too_short_input_is_an_error_not_a_panic() {
    let mel = LogMel::new(80).unwrap();
    let err = mel
        .forward(&Array::from_slice(&[0.0f32; 100], &[100]).unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("log-mel needs more than 200 samples"),
        "{err}"
    );
}
