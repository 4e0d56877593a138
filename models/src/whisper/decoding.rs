//! Greedy decoding of one 30-second window, whisper.cpp-style: an explicit
//! loop that feeds back the argmax token until end-of-text.

use mlx::{Array, Dtype};

use super::tokenizer::SpecialTokens;
use super::Whisper;

/// Token suppression as openai-whisper's `SuppressTokens` and
/// `SuppressBlank` filters apply it.
#[derive(Clone, Debug, Default)]
pub struct Suppression {
    /// Never sampled (non-speech symbols, other control tokens).
    pub always: Vec<u32>,
    /// Not sampled as the first token (the blank and end-of-text).
    pub at_begin: Vec<u32>,
}

/// A vector over the vocabulary: `-inf` at `ids`, `0` elsewhere.
fn additive_mask(vocab: i32, ids: &[u32]) -> mlx::Result<Array> {
    let mut mask = vec![0f32; vocab as usize];
    for &id in ids {
        if let Some(m) = mask.get_mut(id as usize) {
            *m = f32::NEG_INFINITY;
        }
    }
    Array::from_slice(&mask, &[vocab])
}

/// One decoded window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowResult {
    /// Sampled text tokens (prompt and end-of-text excluded).
    pub tokens: Vec<u32>,
    /// Mean log-probability of the sampled tokens (end-of-text included).
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the start-of-transcript position.
    pub no_speech_prob: f32,
}

/// Decodes `mel` (`[1, 3000, n_mels]`) greedily without timestamps.
pub fn greedy_without_timestamps(
    model: &Whisper,
    mel: &Array,
    special: &SpecialTokens,
    suppression: &Suppression,
) -> mlx::Result<WindowResult> {
    let vocab = model.config.n_vocab;
    let always = additive_mask(vocab, &suppression.always)?;
    let at_begin = always.add(&additive_mask(vocab, &suppression.at_begin)?)?;
    let audio = model.encoder.forward(mel)?;
    let mut state = model.decoder.start(&audio)?;
    let prompt = [special.sot as i32, special.no_timestamps as i32];
    let mut input = Array::from_slice(&prompt, &[1, prompt.len() as i32])?;
    let max_tokens = model.config.n_text_ctx / 2;
    let (mut tokens, mut logprob_sum, mut no_speech_prob) = (Vec::new(), 0f32, 0f32);
    loop {
        let logits = model.decoder.forward(&input, &mut state)?;
        if let (true, Some(id)) = (tokens.is_empty(), special.no_speech) {
            let at_sot = logits
                .slice_axis(1, 0, 1)?
                .reshape(&[vocab])?
                .softmax(&[0], true)?;
            no_speech_prob = at_sot
                .slice_axis(0, id as i32, id as i32 + 1)?
                .item::<f32>()?;
        }
        let last = logits
            .slice_axis(1, -1, logits.dim(1)?)?
            .reshape(&[vocab])?;
        let mask = if tokens.is_empty() {
            &at_begin
        } else {
            &always
        };
        let masked = last.add(mask)?;
        let next = masked.argmax(0, false)?.astype(Dtype::U32)?.item::<u32>()?;
        logprob_sum += masked
            .log_softmax(0)?
            .slice_axis(0, next as i32, next as i32 + 1)?
            .item::<f32>()?;
        if next == special.eot || tokens.len() as i32 >= max_tokens {
            break;
        }
        tokens.push(next);
        input = Array::from_slice(&[next as i32], &[1, 1])?;
    }
    let avg_logprob = logprob_sum / (tokens.len() + 1) as f32;
    Ok(WindowResult {
        tokens,
        avg_logprob,
        no_speech_prob,
    })
}
