//! Resemblyzer's front end, `audio.wav_to_mel_spectrogram`: librosa's
//! `melspectrogram` at its defaults — frames centred on multiples of the hop
//! with zeros beyond both ends of the signal, periodic Hann window of
//! `n_fft`, power spectrum `|X|²`, Slaney-normalized mel filterbank — and no
//! logarithm.
//!
//! Many signals are framed as one: each is copied into its own zero-padded
//! slot of one buffer, slots a whole number of hops long, so one strided view
//! frames them all and one FFT and one product with the filterbank run over
//! every frame.

use mlx::{fft, Array};

use super::SpeakerEncoderConfig;
use crate::features::{hann_window, mel_filterbank};

#[derive(Debug, Clone)]
pub struct MelSpectrogram {
    window: Array,
    /// `[n_fft / 2 + 1, n_mels]`, so that frames multiply from the left.
    filters_t: Array,
    n_fft: usize,
    hop: usize,
}

/// Signals laid out in one buffer: frame `j` of signal `i` is frame
/// `first_frame[i] + j` of the buffer.
pub(super) struct Slots {
    pub buffer: Vec<f32>,
    pub first_frame: Vec<usize>,
    pub frames: usize,
}

impl MelSpectrogram {
    pub fn new(config: &SpeakerEncoderConfig) -> mlx::Result<MelSpectrogram> {
        let n_freqs = (config.n_fft / 2 + 1) as i32;
        let filters = Array::from_slice(
            &mel_filterbank(config.sample_rate, config.n_fft, config.n_mels),
            &[config.n_mels as i32, n_freqs],
        )?;
        Ok(MelSpectrogram {
            window: Array::from_slice(&hann_window(config.n_fft), &[config.n_fft as i32])?,
            filters_t: filters.transpose(&[1, 0])?,
            n_fft: config.n_fft,
            hop: config.hop_length,
        })
    }

    /// The filterbank, `[n_mels, n_fft / 2 + 1]`.
    pub fn filters(&self) -> mlx::Result<Array> {
        self.filters_t.transpose(&[1, 0])
    }

    /// Mel frames `[1 + len / hop, n_mels]` of one signal, as
    /// `wav_to_mel_spectrogram` gives them.
    pub fn forward(&self, samples: &[f32]) -> mlx::Result<Array> {
        let frames = 1 + samples.len() / self.hop;
        let slots = self.slots(&[(samples, frames)]);
        self.of_slots(&slots)?.slice_axis(0, 0, frames as i32)
    }

    /// Lays out each `(signal, n)` so that its frames `0..n` (frame `j`
    /// centred on sample `j * hop`, zeros outside the signal) are frames of
    /// one buffer. Only the samples those frames read are copied.
    pub(super) fn slots(&self, signals: &[(&[f32], usize)]) -> Slots {
        let (hop, half) = (self.hop, self.n_fft / 2);
        // A slot holds `n` frames plus the tail of the last one's window.
        let slot_frames = |n: usize| n - 1 + self.n_fft.div_ceil(hop);
        let frames: usize = signals.iter().map(|&(_, n)| slot_frames(n)).sum();
        // Past the last slot: the rest of the last frame the view takes.
        let mut buffer = vec![0f32; frames * hop + self.n_fft - hop];
        let mut first_frame = Vec::with_capacity(signals.len());
        let mut next = 0;
        for &(signal, n) in signals {
            let read = signal.len().min((n - 1) * hop + self.n_fft - half);
            let start = next * hop + half;
            buffer[start..start + read].copy_from_slice(&signal[..read]);
            first_frame.push(next);
            next += slot_frames(n);
        }
        Slots {
            buffer,
            first_frame,
            frames,
        }
    }

    /// Mel power `[slots.frames, n_mels]` of every frame of the buffer.
    pub(super) fn of_slots(&self, slots: &Slots) -> mlx::Result<Array> {
        let buffer = Array::from_slice(&slots.buffer, &[slots.buffer.len() as i32])?;
        let frames = buffer.as_strided(
            &[slots.frames as i32, self.n_fft as i32],
            &[self.hop as i64, 1],
            0,
        )?;
        let spectrum = fft::rfft(&frames.multiply(&self.window)?, self.n_fft as i32, -1)?;
        let power = spectrum.abs()?.square()?;
        power.matmul(&self.filters_t)
    }
}
