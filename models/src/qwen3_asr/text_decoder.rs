//! Qwen3's decoder, the text half of Qwen3-ASR: token embedding, pre-norm
//! blocks of grouped-query self-attention (per-head RMS norm on queries and
//! keys, rotary positions over the two halves of each head) and a SwiGLU
//! feed-forward, a final RMS norm and the output layer (the embedding table
//! when tied). Prefill takes embeddings, since Qwen3-ASR splices the audio
//! encoder's output into the prompt's token embeddings.

use mlx::fast::{self, AttentionMask};
use mlx::{Array, Dtype};

use super::kv_cache::KvCache;
use super::text_config::TextConfig;
use crate::nn::{merge_heads, Embedding, Linear, RmsNorm};
use crate::weights::{WeightError, Weights};

/// Self-attention with fewer key/value heads than query heads.
#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: RmsNorm,
    pub k_norm: RmsNorm,
    pub heads: i32,
    pub kv_heads: i32,
    pub head_dim: i32,
    pub rope_base: f32,
}

impl Attention {
    pub fn load(w: &Weights, prefix: &str, c: &TextConfig) -> Result<Attention, WeightError> {
        let (hidden, d) = (c.hidden_size, c.head_dim);
        let linear = |name: &str, input: i32, output: i32| {
            Linear::load(w, &format!("{prefix}.{name}"), input, output, false)
        };
        let norm = |name: &str| RmsNorm::load(w, &format!("{prefix}.{name}"), d, c.rms_norm_eps);
        Ok(Attention {
            q_proj: linear("q_proj", hidden, c.num_attention_heads * d)?,
            k_proj: linear("k_proj", hidden, c.num_key_value_heads * d)?,
            v_proj: linear("v_proj", hidden, c.num_key_value_heads * d)?,
            o_proj: linear("o_proj", c.num_attention_heads * d, hidden)?,
            q_norm: norm("q_norm")?,
            k_norm: norm("k_norm")?,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: d,
            rope_base: c.rope_base(),
        })
    }

    /// `residual + attention(x)` for `x` `[1, L, hidden]` at positions
    /// `cache.len()..`, writing this layer's keys and values into `cache`.
    pub fn forward(
        &self,
        x: &Array,
        residual: &Array,
        layer: usize,
        cache: &mut KvCache,
    ) -> mlx::Result<Array> {
        let length = x.dim(1)?;
        let offset = cache.len();
        // [1, L, heads · D] → [1, heads, L, D], normalized per head, rotated.
        let heads = |proj: &Linear, norm: Option<&RmsNorm>, count: i32| -> mlx::Result<Array> {
            let mut h = proj
                .forward(x)?
                .reshape(&[1, length, count, self.head_dim])?;
            if let Some(norm) = norm {
                h = norm.forward(&h)?;
            }
            h.transpose(&[0, 2, 1, 3])
        };
        let rotate = |h: Array| fast::rope(&h, self.head_dim, false, self.rope_base, 1.0, offset);
        let q = rotate(heads(&self.q_proj, Some(&self.q_norm), self.heads)?)?;
        let k = rotate(heads(&self.k_proj, Some(&self.k_norm), self.kv_heads)?)?;
        let v = heads(&self.v_proj, None, self.kv_heads)?;
        let (keys, values) = cache.write(layer, &k, &v)?;
        // One query sees every cached position; several see up to their own.
        let mask = if length == 1 {
            AttentionMask::None
        } else {
            AttentionMask::Causal
        };
        let scale = (self.head_dim as f32).powf(-0.5);
        let attended = fast::scaled_dot_product_attention(&q, &keys, &values, scale, mask)?;
        self.o_proj
            .forward_residual(&merge_heads(&attended)?, residual)
    }
}

/// `down(silu(gate(x)) · up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn load(w: &Weights, prefix: &str, c: &TextConfig) -> Result<Mlp, WeightError> {
        let (hidden, inner) = (c.hidden_size, c.intermediate_size);
        let linear = |name: &str, input: i32, output: i32| {
            Linear::load(w, &format!("{prefix}.{name}"), input, output, false)
        };
        Ok(Mlp {
            gate_proj: linear("gate_proj", hidden, inner)?,
            up_proj: linear("up_proj", hidden, inner)?,
            down_proj: linear("down_proj", inner, hidden)?,
        })
    }

    /// `residual + mlp(x)`.
    pub fn forward(&self, x: &Array, residual: &Array) -> mlx::Result<Array> {
        let gated = self
            .gate_proj
            .forward(x)?
            .silu()?
            .multiply(&self.up_proj.forward(x)?)?;
        self.down_proj.forward_residual(&gated, residual)
    }
}

/// One pre-norm block: attention, then the feed-forward, each added back.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

impl DecoderLayer {
    pub fn load(w: &Weights, prefix: &str, c: &TextConfig) -> Result<DecoderLayer, WeightError> {
        let norm = |name: &str| {
            RmsNorm::load(
                w,
                &format!("{prefix}.{name}"),
                c.hidden_size,
                c.rms_norm_eps,
            )
        };
        Ok(DecoderLayer {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Attention::load(w, &format!("{prefix}.self_attn"), c)?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), c)?,
        })
    }

    pub fn forward(&self, x: &Array, layer: usize, cache: &mut KvCache) -> mlx::Result<Array> {
        let x = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, x, layer, cache)?;
        self.mlp
            .forward(&self.post_attention_layernorm.forward(&x)?, &x)
    }
}

/// The output layer: the embedding table, or a matrix of its own.
#[derive(Debug, Clone)]
enum LmHead {
    Tied,
    Linear(Linear),
}

/// The Qwen3 text decoder.
#[derive(Debug, Clone)]
pub struct TextDecoder {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    lm_head: LmHead,
    config: TextConfig,
}

impl TextDecoder {
    /// Loads `{prefix}.embed_tokens`, `{prefix}.layers.{i}.*` and
    /// `{prefix}.norm` (Qwen3-ASR's checkpoint: `model.language_model`), and
    /// `lm_head` unless the config ties it to the embedding table.
    pub fn load(w: &Weights, prefix: &str, c: &TextConfig) -> Result<TextDecoder, WeightError> {
        let embed_tokens = Embedding::load(
            w,
            &format!("{prefix}.embed_tokens"),
            c.vocab_size,
            c.hidden_size,
        )?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| DecoderLayer::load(w, &format!("{prefix}.layers.{i}"), c))
            .collect::<Result<_, _>>()?;
        let lm_head = if c.tie_word_embeddings {
            LmHead::Tied
        } else {
            LmHead::Linear(Linear::load(
                w,
                "lm_head",
                c.hidden_size,
                c.vocab_size,
                false,
            )?)
        };
        Ok(TextDecoder {
            embed_tokens,
            layers,
            norm: RmsNorm::load(w, &format!("{prefix}.norm"), c.hidden_size, c.rms_norm_eps)?,
            lm_head,
            config: c.clone(),
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// An empty cache with room for `capacity` positions.
    pub fn new_cache(&self, capacity: i32) -> mlx::Result<KvCache> {
        let c = &self.config;
        KvCache::new(
            c.num_hidden_layers,
            c.num_key_value_heads,
            c.head_dim,
            capacity,
        )
    }

    /// The embeddings `[1, L, hidden]` of token ids.
    pub fn embed(&self, ids: &[i32]) -> mlx::Result<Array> {
        let vocab = self.config.vocab_size;
        if let Some(bad) = ids.iter().find(|&&id| !(0..vocab).contains(&id)) {
            return Err(mlx::Error::Mlx(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let ids = Array::from_slice(ids, &[1, ids.len() as i32])?;
        self.embed_tokens.forward(&ids)
    }

    /// The final-normed hidden states `[1, L, hidden]` of `embeddings`
    /// `[1, L, hidden]` at positions `cache.len()..`, which it appends to
    /// `cache`.
    pub fn hidden(&self, embeddings: &Array, cache: &mut KvCache) -> mlx::Result<Array> {
        let shape = embeddings.shape();
        if shape.len() != 3 || shape[0] != 1 || shape[2] != self.config.hidden_size || shape[1] < 1
        {
            return Err(mlx::Error::Mlx(format!(
                "decoder input has shape {shape:?}, expected [1, L ≥ 1, {}]",
                self.config.hidden_size
            )));
        }
        cache.check_room(shape[1])?;
        let mut x = embeddings.astype(Dtype::F32)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, i, cache)?;
        }
        cache.advance(shape[1]);
        self.norm.forward(&x)
    }

    /// Logits over the vocabulary of hidden states `[…, hidden]`.
    pub fn logits(&self, hidden: &Array) -> mlx::Result<Array> {
        match &self.lm_head {
            LmHead::Tied => self.embed_tokens.as_linear(hidden),
            LmHead::Linear(head) => head.forward(hidden),
        }
    }

    /// Logits `[L, vocab]` of every position of `embeddings` `[1, L, hidden]`.
    pub fn forward(&self, embeddings: &Array, cache: &mut KvCache) -> mlx::Result<Array> {
        let hidden = self.hidden(embeddings, cache)?;
        self.logits(&hidden.squeeze(&[0])?)
    }

    /// Logits `[vocab]` of the last position of `embeddings` `[1, L, hidden]`
    /// (the output layer runs on that position only).
    pub fn prefill(&self, embeddings: &Array, cache: &mut KvCache) -> mlx::Result<Array> {
        let hidden = self.hidden(embeddings, cache)?;
        let length = hidden.dim(1)?;
        let last = hidden
            .slice_axis(1, length - 1, length)?
            .reshape(&[1, -1])?;
        self.logits(&last)?.reshape(&[-1])
    }

    /// Logits `[vocab]` after feeding one more token.
    pub fn step(&self, token: i32, cache: &mut KvCache) -> mlx::Result<Array> {
        self.prefill(&self.embed(&[token])?, cache)
    }

    /// Greedy decoding from `prompt` for at most `max_new` tokens, stopping
    /// after any token of `eos` (which is kept).
    pub fn greedy(&self, prompt: &[i32], max_new: usize, eos: &[i32]) -> mlx::Result<Vec<i32>> {
        let capacity = (prompt.len() + max_new) as i32;
        let mut cache = self.new_cache(capacity)?;
        let mut logits = self.prefill(&self.embed(prompt)?, &mut cache)?;
        let mut tokens = Vec::with_capacity(max_new);
        while tokens.len() < max_new {
            let token = logits.argmax(0, false)?.astype(Dtype::I32)?.item::<i32>()?;
            tokens.push(token);
            if eos.contains(&token) || tokens.len() == max_new {
                break;
            }
            logits = self.step(token, &mut cache)?;
        }
        Ok(tokens)
    }
}
