//! Whisper's model dimensions read from a Hugging Face `config.json`.

use asr_models::whisper::WhisperDims;
use serde::Deserialize;

/// The subset of a Hugging Face `WhisperConfig` that fixes the dimensions.
#[derive(Deserialize)]
struct HfWhisperConfig {
    num_mel_bins: i32,
    max_source_positions: i32,
    d_model: i32,
    encoder_attention_heads: i32,
    encoder_layers: i32,
    vocab_size: i32,
    max_target_positions: i32,
    decoder_attention_heads: i32,
    decoder_layers: i32,
}

/// Reads a Hugging Face `config.json` body.
pub fn dims_from_hf_config(json: &str) -> Result<WhisperDims, serde_json::Error> {
    let c: HfWhisperConfig = serde_json::from_str(json)?;
    Ok(WhisperDims {
        n_mels: c.num_mel_bins,
        n_audio_ctx: c.max_source_positions,
        n_audio_state: c.d_model,
        n_audio_head: c.encoder_attention_heads,
        n_audio_layer: c.encoder_layers,
        n_vocab: c.vocab_size,
        n_text_ctx: c.max_target_positions,
        n_text_state: c.d_model,
        n_text_head: c.decoder_attention_heads,
        n_text_layer: c.decoder_layers,
    })
}
