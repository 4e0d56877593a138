//! Resemblyzer's speaker encoder (Wan et al., 2018, "Generalized End-to-End
//! Loss for Speaker Verification") on MLX arrays: 40-band mel frames of
//! 1.6 s partial utterances → three stacked LSTMs → the last layer's final
//! hidden state → linear → ReLU → L2 normalization. An utterance's embedding
//! is the normalized mean of its partials' embeddings (`embed_utterance`).

mod config;
mod mel;

use crate::model_config::{LoadError, ModelFolder};
use std::path::Path;

use mlx::{Array, Dtype};

pub use config::{SpeakerEncoderConfig, MODEL_TYPE};
pub use mel::MelSpectrogram;

use crate::nn::{Linear, Lstm};
use crate::weights::WeightError;

/// What [`SpeakerEncoder::embed`] computes, evaluated.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// `[Σ partials, embedding_size]`, L2-normalized: the partials of the
    /// first utterance, then those of the second, …
    pub partials: Array,
    /// Per utterance, the first mel frame of each of its partials.
    pub partial_starts: Vec<Vec<usize>>,
    /// `[utterances, embedding_size]`, L2-normalized.
    pub utterances: Array,
}

#[derive(Debug, Clone)]
pub struct SpeakerEncoder {
    pub config: SpeakerEncoderConfig,
    pub mel: MelSpectrogram,
    /// Stacked: each layer runs over the previous one's outputs.
    pub lstm: Vec<Lstm>,
    pub linear: Linear,
}

impl SpeakerEncoder {
    /// Loads a converted folder (`config.json` + `weights.safetensors`) and
    /// evaluates every weight once.
    pub fn load(dir: &Path) -> Result<SpeakerEncoder, LoadError> {
        let ModelFolder {
            config,
            weights: w,
            weights_path,
        } = ModelFolder::<SpeakerEncoderConfig>::open(dir)?;
        let werr = |error| LoadError::weights(&weights_path, error);
        let hidden = config.hidden_size;
        let lstm = (0..config.num_layers)
            .map(|l| {
                let input = if l == 0 { config.n_mels as i32 } else { hidden };
                Lstm::load(&w, "lstm", &format!("_l{l}"), input, hidden)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(werr)?;
        let linear =
            Linear::load(&w, "linear", hidden, config.embedding_size, true).map_err(werr)?;
        let mel = MelSpectrogram::new(&config).map_err(|e| werr(WeightError::Mlx(e)))?;
        let mut all: Vec<&Array> = lstm
            .iter()
            .flat_map(|l| [&l.weight_ih, &l.weight_hh, &l.bias])
            .collect();
        all.extend(linear.weight.arrays());
        all.extend(&linear.bias);
        mlx::eval(&all).map_err(|e| werr(WeightError::Mlx(e)))?;
        Ok(SpeakerEncoder {
            config,
            mel,
            lstm,
            linear,
        })
    }

    /// Size of one embedding (256 for Resemblyzer).
    pub fn embedding_dims(&self) -> usize {
        self.config.embedding_size as usize
    }

    /// First mel frame of each partial utterance of a signal of `n_samples`
    /// samples (Resemblyzer's `compute_partial_slices`): partials of
    /// `partial_frames` frames every `partial_step` frames while they start
    /// within the signal, the last kept only if at least `min_coverage` of
    /// it is audio, and always at least one.
    pub fn partial_starts(&self, n_samples: usize) -> Vec<usize> {
        let c = &self.config;
        let (hop, length, step) = (c.hop_length, c.partial_frames, c.partial_step());
        let n_frames = (n_samples + 1).div_ceil(hop);
        let steps = (n_frames + step + 1).saturating_sub(length).max(1);
        let mut starts: Vec<usize> = (0..steps).step_by(step).collect();
        let last = *starts.last().expect("at least one partial");
        let coverage = (n_samples as f64 - (last * hop) as f64) / (length * hop) as f64;
        if coverage < c.min_coverage && starts.len() > 1 {
            starts.pop();
        }
        starts
    }

    /// Embeddings `[P, embedding_size]` of mel partials `[P, frames, n_mels]`.
    pub fn embed_partials(&self, mels: &Array) -> mlx::Result<Array> {
        let mut x = mels.clone();
        let mut last = None;
        for layer in &self.lstm {
            let (y, state) = layer.forward(&x, None, false)?;
            x = y;
            last = Some(state.h);
        }
        let hidden = last.ok_or_else(|| mlx::Error::Mlx("the encoder has no LSTM layer".into()))?;
        l2_normalize(&self.linear.forward(&hidden)?.max_scalar(0.0)?)
    }

    /// Resemblyzer's `embed_utterance` of each 16 kHz utterance, taken as is
    /// (no volume normalization or silence trimming): `[N, embedding_size]`,
    /// L2-normalized. An utterance shorter than a partial is zero-padded to
    /// one. The partials of all utterances run through the network as one
    /// batch; memory grows with the total audio (about 1 MB per partial, one
    /// partial per 0.77 s), so hours of audio go in batches of minutes.
    pub fn embed_utterances(&self, utterances: &[&[f32]]) -> mlx::Result<Array> {
        Ok(self.embed(utterances)?.utterances)
    }

    /// [`SpeakerEncoder::embed_utterances`], with each partial's embedding.
    /// An empty utterance is an error (it has no speaker); no utterances give
    /// empty arrays.
    pub fn embed(&self, utterances: &[&[f32]]) -> mlx::Result<Embeddings> {
        if let Some(i) = utterances.iter().position(|u| u.is_empty()) {
            return Err(mlx::Error::Mlx(format!(
                "utterance {i} is empty: no speaker to embed"
            )));
        }
        let dims = self.config.embedding_size;
        if utterances.is_empty() {
            let none = Array::zeros(&[0, dims], Dtype::F32)?;
            return Ok(Embeddings {
                partials: none.clone(),
                partial_starts: Vec::new(),
                utterances: none,
            });
        }
        let length = self.config.partial_frames;
        let partial_starts: Vec<Vec<usize>> = utterances
            .iter()
            .map(|u| self.partial_starts(u.len()))
            .collect();
        // Each utterance is framed up to the end of its last partial.
        let signals: Vec<(&[f32], usize)> = utterances
            .iter()
            .zip(&partial_starts)
            .map(|(u, starts)| (*u, starts[starts.len() - 1] + length))
            .collect();
        let slots = self.mel.slots(&signals);
        let rows: Vec<i32> = partial_starts
            .iter()
            .zip(&slots.first_frame)
            .flat_map(|(starts, &first)| {
                starts
                    .iter()
                    .flat_map(move |&s| (first + s..first + s + length).map(|f| f as i32))
            })
            .collect();
        let n_partials = (rows.len() / length) as i32;
        let mels = self
            .mel
            .of_slots(&slots)?
            .take(&Array::from_slice(&rows, &[rows.len() as i32])?, 0)?
            .reshape(&[n_partials, length as i32, self.config.n_mels as i32])?;
        let partials = self.embed_partials(&mels)?;
        let utterance_embeddings = l2_normalize(&mean_per_utterance(&partials, &partial_starts)?)?;
        mlx::eval(&[&partials, &utterance_embeddings])?;
        Ok(Embeddings {
            partials,
            partial_starts,
            utterances: utterance_embeddings,
        })
    }
}

/// Mean of each utterance's rows of `partials` `[P, E]`, the utterances'
/// rows consecutive with `partial_starts[i].len()` rows each: every
/// utterance's rows are gathered into a `[N, max count, E]` block padded
/// with a zero row, summed, and divided by the count.
fn mean_per_utterance(partials: &Array, partial_starts: &[Vec<usize>]) -> mlx::Result<Array> {
    let counts: Vec<usize> = partial_starts.iter().map(Vec::len).collect();
    let widest = counts.iter().copied().max().unwrap_or(0);
    let total: usize = counts.iter().sum();
    let mut index = Vec::with_capacity(counts.len() * widest);
    let mut next = 0;
    for &count in &counts {
        index.extend((next..next + count).map(|r| r as i32));
        index.extend(std::iter::repeat_n(total as i32, widest - count));
        next += count;
    }
    let zero = Array::zeros(&[1, partials.dim(1)?], Dtype::F32)?;
    let padded = mlx::concatenate(&[partials, &zero], 0)?;
    let index = Array::from_slice(&index, &[counts.len() as i32, widest as i32])?;
    let count: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    padded
        .take(&index, 0)?
        .sum(&[1], false)?
        .divide(&Array::from_slice(&count, &[counts.len() as i32, 1])?)
}

/// Each row divided by its Euclidean norm.
fn l2_normalize(x: &Array) -> mlx::Result<Array> {
    x.divide(&x.square()?.sum(&[-1], true)?.sqrt()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder_without_weights() -> SpeakerEncoder {
        let config = SpeakerEncoderConfig::resemblyzer();
        SpeakerEncoder {
            mel: MelSpectrogram::new(&config).unwrap(),
            config,
            lstm: Vec::new(),
            linear: Linear {
                weight: crate::nn::Matrix::Dense(Array::zeros(&[1, 1], Dtype::F32).unwrap()),
                bias: None,
            },
        }
    }

    #[test]
    fn partials_follow_compute_partial_slices() {
        let e = encoder_without_weights();
        // Shorter than one partial: one, padded.
        assert_eq!(e.partial_starts(1), vec![0]);
        assert_eq!(e.partial_starts(14080), vec![0]);
        // 5 s: the sixth partial (starting at 3.85 s) would be 72% audio.
        assert_eq!(e.partial_starts(80000), vec![0, 77, 154, 231, 308]);
        // 3.7 s: 4 partials, the last one 87% audio.
        assert_eq!(e.partial_starts(59200), vec![0, 77, 154, 231]);
        // Exactly one partial of audio, then the second covers 52%.
        assert_eq!(e.partial_starts(25600), vec![0]);
    }

    #[test]
    fn mean_per_utterance_averages_consecutive_rows() {
        let partials =
            Array::from_slice(&[1.0f32, 0.0, 3.0, 2.0, 5.0, 4.0, 0.0, 9.0], &[4, 2]).unwrap();
        let starts = vec![vec![0, 77, 154], vec![0]];
        let mean = mean_per_utterance(&partials, &starts).unwrap();
        assert_eq!(mean.to_vec::<f32>().unwrap(), vec![3.0, 2.0, 0.0, 9.0]);
    }

    #[test]
    fn an_empty_utterance_is_refused_by_index() {
        let e = encoder_without_weights();
        let audio = vec![0.1f32; 8000];
        let err = e.embed(&[&audio, &[]]).unwrap_err().to_string();
        assert!(err.contains("utterance 1 is empty"), "{err}");
    }
}
