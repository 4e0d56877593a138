//! The CTC head (NeMo's `ConvASRDecoder`: a 1-wide convolution from encoder
//! frames to the vocabulary plus blank, then log-softmax) and its greedy
//! decoding.

use mlx::Array;

use super::config::CtcHeadConfig;
use super::{entropy_confidence, single_utterance, DecodedToken};
use crate::nn::{Linear, Matrix};
use crate::weights::{WeightError, Weights};

#[derive(Debug, Clone)]
pub struct CtcHead {
    /// The 1-wide convolution as the linear map it is.
    projection: Linear,
    /// The blank's id: the last class, after the vocabulary.
    pub blank: u32,
}

impl CtcHead {
    /// Loads `{prefix}.decoder_layers.0.{weight,bias}` (the convolution's
    /// weight in MLX's `[classes, 1, feat_in]` layout), e.g. prefix
    /// `decoder` for a CTC model, `ctc_decoder` for a hybrid's auxiliary head.
    pub fn load(w: &Weights, prefix: &str, config: &CtcHeadConfig) -> Result<CtcHead, WeightError> {
        let tokens = match config.num_classes {
            n if n > 0 => n,
            _ => config.vocabulary.len() as i32,
        };
        let classes = tokens + 1;
        let name = format!("{prefix}.decoder_layers.0");
        let weight = w
            .get_shaped(&format!("{name}.weight"), &[classes, 1, config.feat_in])?
            .reshape(&[classes, config.feat_in])?;
        let bias = w.get_shaped(&format!("{name}.bias"), &[classes])?;
        Ok(CtcHead {
            projection: Linear {
                weight: Matrix::Dense(weight),
                bias: Some(bias),
            },
            blank: tokens as u32,
        })
    }

    /// Log-probabilities over the vocabulary and blank, `[..., T, V+1]`.
    pub fn log_probs(&self, encoded: &Array) -> mlx::Result<Array> {
        self.projection.forward(encoded)?.log_softmax(-1)
    }

    /// The best class of each frame, repeats merged and blanks dropped.
    /// `encoded` is one utterance's encoder output `[1, T, d]`.
    pub fn decode_greedy(&self, encoded: &Array) -> mlx::Result<Vec<DecodedToken>> {
        let log_probs = self.log_probs(&single_utterance(encoded)?)?;
        let best = log_probs.argmax(-1, false)?.astype(mlx::Dtype::U32)?;
        let confidence = entropy_confidence(&log_probs.exp()?)?;
        mlx::eval(&[&best, &confidence])?;
        Ok(collapse(
            &best.to_vec::<u32>()?,
            &confidence.to_vec::<f32>()?,
            self.blank,
        ))
    }
}

/// Greedy CTC from each frame's best class: a token starts where its class
/// does (after a blank or another class) and spans the frames to the next
/// token, the last one to its last frame; its confidence is the frames'
/// mean.
fn collapse(best: &[u32], frame_confidence: &[f32], blank: u32) -> Vec<DecodedToken> {
    let mut starts: Vec<(usize, u32)> = Vec::new();
    let mut previous = blank;
    for (frame, &class) in best.iter().enumerate() {
        if class != blank && class != previous {
            starts.push((frame, class));
        }
        previous = class;
    }
    let last_frame = best.iter().rposition(|&c| c != blank).map_or(0, |f| f + 1);
    let ends = starts
        .iter()
        .skip(1)
        .map(|&(frame, _)| frame)
        .chain([last_frame]);
    starts
        .iter()
        .zip(ends)
        .map(|(&(start, id), end)| {
            let span = &frame_confidence[start..end];
            DecodedToken {
                id,
                start_frame: start,
                frames: end - start,
                confidence: span.iter().sum::<f32>() / span.len() as f32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_and_spans(best: &[u32]) -> Vec<(u32, usize, usize)> {
        collapse(best, &vec![0.5; best.len()], 9)
            .iter()
            .map(|t| (t.id, t.start_frame, t.frames))
            .collect()
    }

    #[test]
    fn repeats_merge_and_a_blank_separates_them() {
        assert_eq!(
            ids_and_spans(&[9, 1, 1, 9, 1, 2, 2, 9, 9]),
            vec![(1, 1, 3), (1, 4, 1), (2, 5, 2)]
        );
        assert_eq!(ids_and_spans(&[9, 9]), vec![]);
        assert_eq!(ids_and_spans(&[3]), vec![(3, 0, 1)]);
    }
}
