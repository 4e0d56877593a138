//! Silero VAD's blocks: the STFT front end, the convolutional encoder and
//! the recurrent decoder.

use mlx::Array;

use super::SileroConfig;
use crate::nn::{Conv1d, Linear, Lstm, LstmState};
use crate::weights::{WeightError, Weights};

type Result<T> = std::result::Result<T, WeightError>;

/// Magnitude spectrum of each network input: the input reflect-padded on
/// the right, cut into windows of `filter_length` every `hop_length`
/// samples, each multiplied by a fixed (learned-free) basis of `bins` real
/// and `bins` imaginary rows — a strided convolution written as one gather
/// and one product.
#[derive(Debug, Clone)]
pub struct Stft {
    /// `[filter_length, 2 · bins]`: the basis, transposed for `windows · basis`.
    basis_t: Array,
    /// For every window sample, which input sample it reads (the reflect
    /// padding folded in): `[windows · filter_length]`.
    gather: Array,
    windows: i32,
    filter_length: i32,
    bins: i32,
}

impl Stft {
    pub fn load(w: &Weights, config: &SileroConfig) -> Result<Stft> {
        let (filter, bins) = (config.filter_length, config.bins());
        let basis = w.get_shaped("stft.weight", &[2 * bins, filter, 1])?;
        let basis_t = basis.reshape(&[2 * bins, filter])?.transpose(&[1, 0])?;
        // The input is padded on the right by reflection, as long as the
        // context; windows of the padded input every hop.
        let input = config.input_samples();
        let padded = input + config.context_samples;
        let windows = (padded - filter) / config.hop_length + 1;
        let reflect = |j: i32| if j < input { j } else { 2 * (input - 1) - j };
        let indices: Vec<i32> = (0..windows)
            .flat_map(|t| (0..filter).map(move |k| reflect(t * config.hop_length + k)))
            .collect();
        Ok(Stft {
            basis_t,
            gather: Array::from_slice(&indices, &[windows * filter])?,
            windows,
            filter_length: filter,
            bins,
        })
    }

    pub fn arrays(&self) -> Vec<&Array> {
        vec![&self.basis_t, &self.gather]
    }

    /// `x` `[n, input_samples]` → magnitudes `[n, windows, bins]`.
    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        let n = x.dim(0)?;
        let spectrum = x
            .take(&self.gather, 1)?
            .reshape(&[n * self.windows, self.filter_length])?
            .matmul(&self.basis_t)?
            .reshape(&[n, self.windows, 2 * self.bins])?;
        let real = spectrum.slice_axis(2, 0, self.bins)?;
        let imag = spectrum.slice_axis(2, self.bins, 2 * self.bins)?;
        real.square()?.add(&imag.square()?)?.sqrt()
    }
}

/// One encoder block: a kernel-3 convolution (padding 1) and ReLU.
#[derive(Debug, Clone)]
pub struct EncoderBlock {
    pub conv: Conv1d,
}

impl EncoderBlock {
    pub fn load(w: &Weights, index: usize, input: i32, output: i32, stride: i32) -> Result<Self> {
        Ok(EncoderBlock {
            conv: Conv1d::load(w, &format!("encoder.{index}"), input, output, 3, stride)?,
        })
    }

    /// `[n, length, input]` → `[n, length / stride, output]`.
    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        self.conv.forward(x)?.max_scalar(0.0)
    }
}

/// The decoder: an LSTM cell whose state runs from frame to frame, then
/// ReLU and a linear head (a 1×1 convolution in the original) with a
/// sigmoid: the speech probability.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub lstm: Lstm,
    pub head: Linear,
}

impl Decoder {
    pub fn load(w: &Weights, hidden: i32) -> Result<Decoder> {
        Ok(Decoder {
            lstm: Lstm::load(w, "decoder.lstm", "", hidden, hidden)?,
            head: Linear::load(w, "decoder.head", hidden, 1, true)?,
        })
    }

    /// Encoded frames `[1, frames, hidden]` in order, from `state` →
    /// probabilities `[frames]` and the state after the last frame.
    pub fn forward(&self, x: &Array, state: &LstmState) -> mlx::Result<(Array, LstmState)> {
        let (h, state) = self.lstm.forward(x, Some(state), false)?;
        let logits = self.head.forward(&h.max_scalar(0.0)?)?;
        Ok((logits.sigmoid()?.reshape(&[-1])?, state))
    }

    /// The state before the first frame.
    pub fn zero_state(&self) -> mlx::Result<LstmState> {
        self.lstm.zero_state(1)
    }
}
