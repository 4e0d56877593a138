//! Parakeet's log-mel front end: NeMo's `AudioToMelSpectrogramPreprocessor`
//! as parakeet-mlx computes it at inference (the reference the MLX port is
//! checked against).
//!
//! The signal is preemphasized, reflect-padded by `n_fft / 2` at both ends
//! and cut into `win_length` frames every `hop_length` samples; each frame
//! is weighted by a periodic window and zero-padded to `n_fft` for the FFT.
//! The magnitude is `|re| + |im|` (parakeet-mlx's, where NeMo takes the
//! Euclidean norm), raised to `mag_power`, projected onto a Slaney mel
//! filterbank and logged; each mel bin (or the whole matrix) is then
//! normalized to zero mean and unit (biased) standard deviation over time.

use serde::{Deserialize, Serialize};

use mlx::{fft, Array};

use crate::features::{hann_window, mel_filterbank, reflect_pad};

/// Added to the mel power before the log (parakeet-mlx's guard; NeMo adds 2^-24).
const LOG_GUARD: f64 = 1e-5;
/// Added to the standard deviation before dividing by it.
const STD_EPSILON: f64 = 1e-5;

/// The window each frame is weighted by, periodic as parakeet-mlx builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureWindow {
    #[serde(alias = "hanning")]
    Hann,
    Hamming,
}

/// What the log-mel matrix is normalized over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// Each mel bin over time (NeMo's `per_feature`).
    PerFeature,
    /// The whole matrix at once.
    AllFeatures,
}

/// The preprocessor section of a Parakeet config, named as NeMo's
/// `model_config.yaml` and parakeet-mlx's `PreprocessArgs` name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub sample_rate: usize,
    pub normalize: Normalization,
    /// Window length in seconds.
    pub window_size: f64,
    /// Hop in seconds.
    pub window_stride: f64,
    pub window: FeatureWindow,
    /// Number of mel bins.
    pub features: usize,
    pub n_fft: usize,
    /// Training-time noise amplitude; inference adds none.
    #[serde(default)]
    pub dither: f64,
    /// Signals shorter than this many samples are padded with `pad_value`.
    #[serde(default)]
    pub pad_to: usize,
    #[serde(default)]
    pub pad_value: f64,
    #[serde(default = "default_preemph")]
    pub preemph: Option<f64>,
    #[serde(default = "default_mag_power")]
    pub mag_power: f64,
}

fn default_preemph() -> Option<f64> {
    Some(0.97)
}

fn default_mag_power() -> f64 {
    2.0
}

impl PreprocessConfig {
    /// The front end of the NeMo FastConformer checkpoints (parakeet-tdt-0.6b-v2
    /// and v3 use 128 mel bins, the 1.1b models 80).
    pub fn fastconformer(features: usize) -> PreprocessConfig {
        PreprocessConfig {
            sample_rate: 16000,
            normalize: Normalization::PerFeature,
            window_size: 0.025,
            window_stride: 0.01,
            window: FeatureWindow::Hann,
            features,
            n_fft: 512,
            dither: 1e-5,
            pad_to: 0,
            pad_value: 0.0,
            preemph: default_preemph(),
            mag_power: default_mag_power(),
        }
    }

    /// Samples per window, truncated as NeMo truncates it.
    pub fn win_length(&self) -> usize {
        (self.window_size * self.sample_rate as f64) as usize
    }

    /// Samples per hop, truncated as NeMo truncates it.
    pub fn hop_length(&self) -> usize {
        (self.window_stride * self.sample_rate as f64) as usize
    }
}

/// Computes Parakeet's normalized log-mel features.
#[derive(Debug, Clone)]
pub struct ParakeetFeatures {
    config: PreprocessConfig,
    /// `[win_length]`.
    window: Array,
    /// `[n_fft/2 + 1, features]`, transposed once so frames multiply from the left.
    filters_t: Array,
}

impl ParakeetFeatures {
    pub fn new(config: PreprocessConfig) -> mlx::Result<ParakeetFeatures> {
        let (win, n_fft, hop) = (config.win_length(), config.n_fft, config.hop_length());
        if win == 0 || hop == 0 || win > n_fft || config.features == 0 {
            return Err(mlx::Error::Mlx(format!(
                "parakeet features: need 0 < win_length ({win}) <= n_fft ({n_fft}), \
                 hop_length ({hop}) > 0 and features ({}) > 0",
                config.features
            )));
        }
        let window = match config.window {
            FeatureWindow::Hann => hann_window(win),
            FeatureWindow::Hamming => periodic_hamming(win),
        };
        let filters = Array::from_slice(
            &mel_filterbank(config.sample_rate, n_fft, config.features),
            &[config.features as i32, (n_fft / 2 + 1) as i32],
        )?;
        Ok(ParakeetFeatures {
            window: Array::from_slice(&window, &[win as i32])?,
            filters_t: filters.transpose(&[])?,
            config,
        })
    }

    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }

    /// Frames `forward` yields for `samples` samples (after `pad_to`):
    /// every window that fits the signal reflect-padded by `n_fft / 2` at
    /// both ends, one more than NeMo's `samples / hop_length + 1` when the
    /// last partial hop is long enough.
    pub fn num_frames(&self, samples: usize) -> usize {
        let c = &self.config;
        let padded = samples.max(c.pad_to) + 2 * (c.n_fft / 2);
        (padded - c.win_length()) / c.hop_length() + 1
    }

    /// `samples` (mono, at `sample_rate`, more than `n_fft / 2` of them after
    /// `pad_to`) → normalized log-mel `[num_frames(len), features]`, f32.
    pub fn forward(&self, samples: &[f32]) -> mlx::Result<Array> {
        let c = &self.config;
        let mut x = Array::from_slice(samples, &[samples.len() as i32])?;
        if samples.len() < c.pad_to {
            let extra = (c.pad_to - samples.len()) as i32;
            x = x.pad(&[0], &[0], &[extra], c.pad_value)?;
        }
        let len = x.size();
        let pad = c.n_fft / 2;
        if len <= pad {
            return Err(mlx::Error::Mlx(format!(
                "parakeet features need more than {pad} samples, got {len}"
            )));
        }
        if let Some(k) = c.preemph {
            let rest = x
                .slice_axis(0, 1, len as i32)?
                .subtract(&x.slice_axis(0, 0, len as i32 - 1)?.mul_scalar(k)?)?;
            x = mlx::concatenate(&[&x.slice_axis(0, 0, 1)?, &rest], 0)?;
        }
        let padded = reflect_pad(&x, pad)?;
        let (win, hop) = (c.win_length(), c.hop_length());
        let frames = padded.as_strided(
            &[self.num_frames(len) as i32, win as i32],
            &[hop as i64, 1],
            0,
        )?;
        // The window sits at the start of each n_fft frame (zero-padded after
        // it), as parakeet-mlx places it, not centred as torch.stft would.
        let spectrum = fft::rfft(&frames.multiply(&self.window)?, c.n_fft as i32, -1)?;
        let magnitude = spectrum.real()?.abs()?.add(&spectrum.imag()?.abs()?)?;
        let power = if c.mag_power == 2.0 {
            magnitude.square()?
        } else {
            magnitude.pow_scalar(c.mag_power)?
        };
        let log = power
            .matmul(&self.filters_t)?
            .add_scalar(LOG_GUARD)?
            .log()?;
        let axes: &[i32] = match c.normalize {
            Normalization::PerFeature => &[0],
            Normalization::AllFeatures => &[],
        };
        let mean = log.mean(axes, true)?;
        let std = log.var(axes, true)?.sqrt()?.add_scalar(STD_EPSILON)?;
        log.subtract(&mean)?.divide(&std)
    }
}

/// Periodic Hamming window of length `n`.
fn periodic_hamming(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let phase = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            (0.54 - 0.46 * phase.cos()) as f32
        })
        .collect()
}
