//! Log-mel spectrogram on MLX arrays, as Whisper computes it: reflect-padded
//! STFT (periodic Hann window), power spectrum, Slaney mel filterbank,
//! `log10(max(x, 1e-10))`, clamped to 8 below the maximum, then `(x + 4) / 4`.

use std::f64::consts::PI;

use mlx::{fft, Array, Dtype};

use crate::whisper::constants::{HOP_LENGTH, N_FFT, SAMPLE_RATE};

/// Hertz → mel on the Slaney scale (linear below 1 kHz, logarithmic above).
fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz, min_log_mel) = (200.0 / 3.0, 1000.0, 15.0);
    let log_step = 6.4f64.ln() / 27.0;
    if hz < min_log_hz {
        hz / f_sp
    } else {
        min_log_mel + (hz / min_log_hz).ln() / log_step
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz, min_log_mel) = (200.0 / 3.0, 1000.0, 15.0);
    let log_step = 6.4f64.ln() / 27.0;
    if mel < min_log_mel {
        mel * f_sp
    } else {
        min_log_hz * ((mel - min_log_mel) * log_step).exp()
    }
}

/// Triangular Slaney-normalized mel filters, row-major `[n_mels, n_fft/2 + 1]`
/// (the filterbank librosa builds with `htk=False, norm="slaney"`).
pub fn mel_filterbank(sample_rate: usize, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_freqs = n_fft / 2 + 1;
    let nyquist = sample_rate as f64 / 2.0;
    let fft_hz: Vec<f64> = (0..n_freqs)
        .map(|i| i as f64 * nyquist / (n_freqs - 1) as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut filters = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let (left, center, right) = (edges[m], edges[m + 1], edges[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_hz.iter().enumerate() {
            let rising = (f - left) / (center - left);
            let falling = (right - f) / (right - center);
            filters[m * n_freqs + k] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    filters
}

/// Periodic Hann window of length `n`.
pub fn hann_window(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Computes Whisper's log-mel features.
#[derive(Debug, Clone)]
pub struct LogMel {
    /// `[n_freqs, n_mels]`, transposed once so frames multiply from the left.
    filters_t: Array,
    window: Array,
    n_mels: usize,
}

impl LogMel {
    pub fn new(n_mels: usize) -> mlx::Result<LogMel> {
        let n_freqs = (N_FFT / 2 + 1) as i32;
        let filters = Array::from_slice(
            &mel_filterbank(SAMPLE_RATE as usize, N_FFT, n_mels),
            &[n_mels as i32, n_freqs],
        )?;
        Ok(LogMel {
            filters_t: filters.transpose(&[])?,
            window: Array::from_slice(&hann_window(N_FFT), &[N_FFT as i32])?,
            n_mels,
        })
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// `samples` (f32, 16 kHz mono, at least `N_FFT / 2 + 1` long) →
    /// `[n_frames, n_mels]` with `n_frames = len / HOP_LENGTH`.
    pub fn forward(&self, samples: &Array) -> mlx::Result<Array> {
        let len = samples.size();
        let pad = N_FFT / 2;
        if len <= pad {
            return Err(mlx::Error::Mlx(format!(
                "log-mel needs more than {pad} samples, got {len}"
            )));
        }
        // Whisper drops the last centered frame.
        let log = self.log10_frames(&reflect_pad(samples, pad)?, len / HOP_LENGTH)?;
        let max = log.max(&[], false)?;
        normalize(&log, &max)
    }

    /// `log10` mel power `[n_frames, n_mels]` of frames `0..n_frames` of
    /// `context`, where frame `i` covers `context[i * HOP_LENGTH..][..N_FFT]`
    /// (a signal with `N_FFT / 2` samples of context before its first frame
    /// centre): not yet clamped or scaled, so that long recordings can be
    /// computed piecewise.
    pub fn log10_frames(&self, context: &Array, n_frames: usize) -> mlx::Result<Array> {
        let needed = (n_frames.max(1) - 1) * HOP_LENGTH + N_FFT;
        if context.size() < needed {
            return Err(mlx::Error::Mlx(format!(
                "{n_frames} log-mel frames need {needed} samples, got {}",
                context.size()
            )));
        }
        let frames =
            context.as_strided(&[n_frames as i32, N_FFT as i32], &[HOP_LENGTH as i64, 1], 0)?;
        let spectrum = fft::rfft(&frames.multiply(&self.window)?, N_FFT as i32, -1)?;
        let power = spectrum.abs()?.square()?;
        power.matmul(&self.filters_t)?.max_scalar(1e-10)?.log10()
    }
}

/// Whisper's dynamic-range clamp and scaling of `log10` mel frames:
/// `(max(x, max - 8) + 4) / 4`, `max` a scalar array.
pub fn normalize(log: &Array, max: &Array) -> mlx::Result<Array> {
    log.maximum(&max.sub_scalar(8.0)?)?
        .add_scalar(4.0)?
        .div_scalar(4.0)
}

/// Pads a 1-D signal by mirroring `pad` samples at each end (edge excluded).
pub(crate) fn reflect_pad(x: &Array, pad: usize) -> mlx::Result<Array> {
    let len = x.size() as i32;
    let pad = pad as i32;
    let left = Array::arange(f64::from(pad), 0.0, -1.0, Dtype::I32)?;
    let right = Array::arange(
        f64::from(len - 2),
        f64::from(len - 2 - pad),
        -1.0,
        Dtype::I32,
    )?;
    mlx::concatenate(&[&x.take(&left, 0)?, x, &x.take(&right, 0)?], 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        assert!((hz_to_mel(600.0) - 9.0).abs() < 1e-12);
        for hz in [0.0, 300.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }

    #[test]
    fn reflect_pad_mirrors_without_repeating_the_edge() {
        let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &[5]).unwrap();
        let y = reflect_pad(&x, 2).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(y, vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0]);
    }
}
