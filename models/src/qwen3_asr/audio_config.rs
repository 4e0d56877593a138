//! The audio encoder's configuration: `audio_config` of a Qwen3-ASR
//! `config.json`, with Hugging Face's names and defaults (Qwen3-ASR-1.7B's).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioConfig {
    pub num_mel_bins: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub d_model: usize,
    /// Half the mel frames of one chunk the conv stem sees on its own.
    pub n_window: usize,
    /// Mel frames one attention window spans: a multiple of `2 * n_window`,
    /// so that windows are whole chunks.
    pub n_window_infer: usize,
    /// Channels of the conv stem.
    pub downsample_hidden_size: usize,
    /// Positions of the sinusoidal table: frames of one chunk after the stem.
    pub max_position_embeddings: usize,
    /// Width of the projected embeddings: the text decoder's hidden size.
    pub output_dim: usize,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            num_mel_bins: 128,
            encoder_layers: 24,
            encoder_attention_heads: 16,
            encoder_ffn_dim: 4096,
            d_model: 1024,
            n_window: 50,
            n_window_infer: 800,
            downsample_hidden_size: 480,
            max_position_embeddings: 13,
            output_dim: 3584,
        }
    }
}

impl AudioConfig {
    /// Values the encoder cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        let chunk = self.chunk_frames();
        if self.n_window == 0
            || self.n_window_infer == 0
            || !self.n_window_infer.is_multiple_of(chunk)
        {
            return Err(format!(
                "n_window_infer {} must be a positive multiple of 2 * n_window = {chunk}",
                self.n_window_infer
            ));
        }
        let per_chunk = self.frames_per_chunk();
        if per_chunk > self.max_position_embeddings {
            return Err(format!(
                "a chunk gives {per_chunk} frames, more than max_position_embeddings {}",
                self.max_position_embeddings
            ));
        }
        let heads = self.encoder_attention_heads;
        if heads == 0
            || !self.d_model.is_multiple_of(heads)
            || !self.d_model.is_multiple_of(2)
            || self.d_model < 4
        {
            return Err(format!(
                "d_model {} must be even, at least 4 and divisible by encoder_attention_heads {heads}",
                self.d_model
            ));
        }
        if self.num_mel_bins == 0 || self.downsample_hidden_size == 0 {
            return Err("num_mel_bins and downsample_hidden_size must be positive".into());
        }
        Ok(())
    }

    /// Mel frames of one chunk.
    pub fn chunk_frames(&self) -> usize {
        2 * self.n_window
    }

    /// Encoder frames of one whole chunk (three stride-2 convolutions).
    pub fn frames_per_chunk(&self) -> usize {
        stem_frames(self.chunk_frames())
    }

    /// Encoder frames (and projected embeddings) for `mel_frames` mel
    /// frames: each whole chunk gives [`Self::frames_per_chunk`], the last
    /// partial one what the stem leaves of it.
    pub fn output_frames(&self, mel_frames: usize) -> usize {
        let chunk = self.chunk_frames();
        mel_frames / chunk * self.frames_per_chunk() + stem_frames(mel_frames % chunk)
    }

    /// Encoder frames attending to each other: the frames of
    /// `n_window_infer` mel frames' whole chunks.
    pub fn attention_window(&self) -> usize {
        self.n_window_infer / self.chunk_frames() * self.frames_per_chunk()
    }
}

/// Length after three 3-wide, stride-2, 1-padded convolutions (0 stays 0).
fn stem_frames(len: usize) -> usize {
    (0..3).fold(len, |n, _| n.div_ceil(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_frames_count_whole_chunks_and_the_rest() {
        let c = AudioConfig::default();
        assert_eq!(c.frames_per_chunk(), 13);
        assert_eq!(c.output_frames(0), 0);
        assert_eq!(c.output_frames(1), 1);
        assert_eq!(c.output_frames(100), 13);
        assert_eq!(c.output_frames(137), 13 + 5);
        assert_eq!(c.output_frames(1100), 143);
        assert_eq!(c.attention_window(), 104);
        assert!(c.validate().is_ok());
        let odd = AudioConfig {
            n_window_infer: 150,
            ..AudioConfig::default()
        };
        assert!(odd.validate().is_err());
    }
}
