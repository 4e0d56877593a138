//! Qwen3-ASR's audio encoder: a Whisper-style transformer over log-mel cut
//! into chunks of `2 * n_window` frames. Each chunk is an image the conv stem
//! (three 3×3 stride-2 convolutions with GELU) shrinks 8× in time and
//! frequency; its channels × bands per frame are projected to `d_model` and
//! given sinusoidal positions counted from the chunk's start. Attention is
//! block-diagonal: frames attend only within windows of `n_window_infer`
//! mel frames' whole chunks. A final layer norm, then the multimodal
//! projector (linear, GELU, linear) maps each frame to the text decoder's
//! width: the embeddings spliced in at the audio placeholder tokens.
//!
//! Weight names are Hugging Face's `Qwen3ASRForConditionalGeneration`
//! state dict's: `{prefix}.audio_tower.*` and `{prefix}.multi_modal_projector.*`
//! with `prefix` = `model`, convolution weights in PyTorch's layout.

use mlx::fast::{self, AttentionMask};
use mlx::{Array, BinaryOp, Dtype};

use crate::nn::{merge_heads, LayerNorm, Linear};
use crate::qwen3_asr::audio_config::AudioConfig;
use crate::weights::{WeightError, Weights};

type Result<T> = std::result::Result<T, WeightError>;

const STEM_CONVS: usize = 3;
const KERNEL: i32 = 3;
const STRIDE: i32 = 2;

/// A 3×3 stride-2 convolution of the stem over `[chunks, time, bands, in]`.
#[derive(Debug, Clone)]
pub struct StemConv {
    /// `[out, k_time, k_band, in]`.
    pub weight: Array,
    pub bias: Array,
}

impl StemConv {
    /// Reads PyTorch's `[out, in, k_band, k_time]` (the reference's images
    /// are bands × time) and swaps it into our time × bands layout.
    fn load(w: &Weights, prefix: &str, input: i32, output: i32) -> Result<StemConv> {
        let weight = w.get_shaped(
            &format!("{prefix}.weight"),
            &[output, input, KERNEL, KERNEL],
        )?;
        Ok(StemConv {
            weight: weight.transpose(&[0, 3, 2, 1])?,
            bias: w.get_shaped(&format!("{prefix}.bias"), &[output])?,
        })
    }

    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        x.conv2d(&self.weight, [STRIDE; 2], [KERNEL / 2; 2], [1, 1], 1)?
            .add(&self.bias)?
            .gelu()
    }
}

/// The conv stem and the projection of each frame's channels × bands.
#[derive(Debug, Clone)]
pub struct ConvStem {
    pub convs: Vec<StemConv>,
    pub out: Linear,
}

impl ConvStem {
    fn load(w: &Weights, prefix: &str, c: &AudioConfig) -> Result<ConvStem> {
        let channels = c.downsample_hidden_size as i32;
        let convs = (0..STEM_CONVS)
            .map(|i| {
                let input = if i == 0 { 1 } else { channels };
                StemConv::load(w, &format!("{prefix}.conv2d{}", i + 1), input, channels)
            })
            .collect::<Result<Vec<_>>>()?;
        let bands = (0..STEM_CONVS).fold(c.num_mel_bins, |n, _| n.div_ceil(2)) as i32;
        let out = Linear::load(
            w,
            &format!("{prefix}.conv_out"),
            channels * bands,
            c.d_model as i32,
            false,
        )?;
        Ok(ConvStem { convs, out })
    }

    /// `[chunks, chunk_frames, n_mels]` → `[chunks, frames_per_chunk, d_model]`.
    fn forward(&self, chunks: &Array) -> mlx::Result<Array> {
        let mut x = chunks.expand_dims(&[3])?;
        for conv in &self.convs {
            x = conv.forward(&x)?;
        }
        let (n, t, bands, channels) = (x.dim(0)?, x.dim(1)?, x.dim(2)?, x.dim(3)?);
        // The reference flattens each frame channel-major.
        let frames = x
            .transpose(&[0, 1, 3, 2])?
            .reshape(&[n, t, channels * bands])?;
        self.out.forward(&frames)
    }
}

/// Whisper's sinusoids `[length, channels]`: sines then cosines of
/// geometrically spaced frequencies from 1 to 1/10000.
fn sinusoids(length: usize, channels: usize) -> mlx::Result<Array> {
    let half = channels / 2;
    let step = (10000f64).ln() / (half as f64 - 1.0);
    let rates = Array::arange(0.0, half as f64, 1.0, Dtype::F32)?
        .mul_scalar(-step)?
        .exp()?
        .reshape(&[1, half as i32])?;
    let times = Array::arange(0.0, length as f64, 1.0, Dtype::F32)?.reshape(&[length as i32, 1])?;
    let angles = times.multiply(&rates)?;
    mlx::concatenate(&[&angles.sin()?, &angles.cos()?], 1)
}

/// Self-attention within windows (batched as `[windows, window, d_model]`).
#[derive(Debug, Clone)]
pub struct WindowAttention {
    /// Query, key and value projections stacked: one product.
    pub qkv: Linear,
    pub out: Linear,
    pub heads: i32,
}

impl WindowAttention {
    fn load(w: &Weights, prefix: &str, dims: i32, heads: i32) -> Result<WindowAttention> {
        let proj = |name: &str| Linear::load(w, &format!("{prefix}.{name}"), dims, dims, true);
        Ok(WindowAttention {
            qkv: Linear::stack(&[proj("q_proj")?, proj("k_proj")?, proj("v_proj")?])?,
            out: proj("out_proj")?,
            heads,
        })
    }

    /// Attention of the frames `x` `[frames, d_model]` within `windows`.
    fn forward(&self, x: &Array, windows: &Windows) -> mlx::Result<Array> {
        let (frames, dims) = (x.dim(0)?, x.dim(1)?);
        let head_dim = dims / self.heads;
        let qkv = windows.split(&self.qkv.forward(x)?)?;
        let qkv = qkv
            .reshape(&[windows.count, windows.length, 3 * self.heads, head_dim])?
            .transpose(&[0, 2, 1, 3])?;
        let part = |i: i32| qkv.slice_axis(1, i * self.heads, (i + 1) * self.heads);
        let mask = windows
            .mask
            .as_ref()
            .map_or(AttentionMask::None, AttentionMask::Array);
        let scale = (head_dim as f32).powf(-0.5);
        let y = fast::scaled_dot_product_attention(&part(0)?, &part(1)?, &part(2)?, scale, mask)?;
        let y = merge_heads(&y)?
            .reshape(&[-1, dims])?
            .slice_axis(0, 0, frames)?;
        self.out.forward(&y)
    }
}

/// The attention windows over a clip's frames: `count` windows of `length`
/// frames, the last one padded to that length and its padding masked.
struct Windows {
    count: i32,
    length: i32,
    frames: i32,
    /// Which keys of each window are frames, `[count, 1, 1, length]`, when
    /// the last window is padded.
    mask: Option<Array>,
}

impl Windows {
    fn new(frames: i32, length: i32) -> mlx::Result<Windows> {
        let count = (frames + length - 1) / length;
        let mask = if frames % length != 0 {
            Some(
                Array::arange(0.0, f64::from(count * length), 1.0, Dtype::I32)?
                    .binary_scalar(BinaryOp::Less, f64::from(frames))?
                    .reshape(&[count, 1, 1, length])?,
            )
        } else {
            None
        };
        Ok(Windows {
            count,
            length,
            frames,
            mask,
        })
    }

    /// `x` `[frames, …]` padded with zero frames to whole windows.
    fn split(&self, x: &Array) -> mlx::Result<Array> {
        let padding = self.count * self.length - self.frames;
        x.pad(&[0], &[0], &[padding], 0.0)
    }
}

/// A pre-norm transformer layer: windowed self-attention, then a GELU MLP.
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    pub attention_norm: LayerNorm,
    pub attention: WindowAttention,
    pub mlp_norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

impl EncoderLayer {
    fn load(w: &Weights, prefix: &str, c: &AudioConfig) -> Result<EncoderLayer> {
        let (dims, ffn) = (c.d_model as i32, c.encoder_ffn_dim as i32);
        Ok(EncoderLayer {
            attention_norm: LayerNorm::load(w, &format!("{prefix}.self_attn_layer_norm"), dims)?,
            attention: WindowAttention::load(
                w,
                &format!("{prefix}.self_attn"),
                dims,
                c.encoder_attention_heads as i32,
            )?,
            mlp_norm: LayerNorm::load(w, &format!("{prefix}.final_layer_norm"), dims)?,
            fc1: Linear::load(w, &format!("{prefix}.fc1"), dims, ffn, true)?,
            fc2: Linear::load(w, &format!("{prefix}.fc2"), ffn, dims, true)?,
        })
    }

    /// Frames `[frames, d_model]` through the layer; only attention sees
    /// the windows, so the padding of the last one costs the linear layers
    /// nothing.
    fn forward(&self, x: &Array, windows: &Windows) -> mlx::Result<Array> {
        let h = x.add(
            &self
                .attention
                .forward(&self.attention_norm.forward(x)?, windows)?,
        )?;
        let hidden = self.fc1.forward_gelu(&self.mlp_norm.forward(&h)?)?;
        self.fc2.forward_residual(&hidden, &h)
    }
}

/// Linear, GELU, linear: encoder frames to the text decoder's width.
#[derive(Debug, Clone)]
pub struct Projector {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl Projector {
    fn load(w: &Weights, prefix: &str, c: &AudioConfig) -> Result<Projector> {
        let (dims, out) = (c.d_model as i32, c.output_dim as i32);
        Ok(Projector {
            linear_1: Linear::load(w, &format!("{prefix}.linear_1"), dims, dims, true)?,
            linear_2: Linear::load(w, &format!("{prefix}.linear_2"), dims, out, true)?,
        })
    }

    fn forward(&self, x: &Array) -> mlx::Result<Array> {
        self.linear_2.forward(&self.linear_1.forward_gelu(x)?)
    }
}

#[derive(Debug, Clone)]
pub struct AudioEncoder {
    pub config: AudioConfig,
    pub stem: ConvStem,
    /// `[frames_per_chunk, d_model]`.
    pub positions: Array,
    pub layers: Vec<EncoderLayer>,
    pub ln_post: LayerNorm,
    pub projector: Projector,
}

impl AudioEncoder {
    /// Loads `{prefix}.audio_tower.*` and `{prefix}.multi_modal_projector.*`
    /// (`prefix` is `model` in Hugging Face's checkpoints); an invalid
    /// `config` ([`AudioConfig::validate`]) is an error too.
    pub fn load(w: &Weights, prefix: &str, config: &AudioConfig) -> Result<AudioEncoder> {
        let c = config;
        c.validate()
            .map_err(|e| WeightError::Mlx(mlx::Error::Mlx(format!("audio_config: {e}"))))?;
        let per_chunk = c.frames_per_chunk();
        let tower = format!("{prefix}.audio_tower");
        let layers = (0..c.encoder_layers)
            .map(|i| EncoderLayer::load(w, &format!("{tower}.layers.{i}"), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(AudioEncoder {
            config: c.clone(),
            stem: ConvStem::load(w, &tower, c)?,
            positions: sinusoids(per_chunk, c.d_model)?,
            layers,
            ln_post: LayerNorm::load(w, &format!("{tower}.ln_post"), c.d_model as i32)?,
            projector: Projector::load(w, &format!("{prefix}.multi_modal_projector"), c)?,
        })
    }

    /// Frames (and embeddings) for `mel_frames` mel frames.
    pub fn output_frames(&self, mel_frames: usize) -> usize {
        self.config.output_frames(mel_frames)
    }

    /// Encoder states after `ln_post`, `[output_frames(T), d_model]`, for one
    /// clip's log-mel `[T, n_mels]` (unpadded: the chunks' padding is zeros).
    pub fn encode(&self, mel: &Array) -> mlx::Result<Array> {
        let c = &self.config;
        let (frames, bands) = (mel.dim(0)? as usize, mel.dim(1)?);
        if frames == 0 || bands != c.num_mel_bins as i32 {
            return Err(mlx::Error::Mlx(format!(
                "audio encoder: expected [frames > 0, {}] log-mel, got {:?}",
                c.num_mel_bins,
                mel.shape()
            )));
        }
        let chunk = c.chunk_frames();
        let chunks = frames.div_ceil(chunk);
        let mel = mel.pad(&[0], &[0], &[(chunks * chunk - frames) as i32], 0.0)?;
        let per_chunk = c.frames_per_chunk() as i32;
        let d = c.d_model as i32;
        let x = self
            .stem
            .forward(&mel.reshape(&[chunks as i32, chunk as i32, bands])?)?
            .add(&self.positions)?
            .reshape(&[chunks as i32 * per_chunk, d])?;

        // Frames from the last chunk's padding are dropped; the rest attend
        // within windows.
        let valid = self.output_frames(frames) as i32;
        let windows = Windows::new(valid, c.attention_window() as i32)?;
        let mut x = x.slice_axis(0, 0, valid)?;
        for layer in &self.layers {
            x = layer.forward(&x, &windows)?;
        }
        self.ln_post.forward(&x)
    }

    /// The projected audio embeddings `[output_frames(T), output_dim]` of
    /// one clip's log-mel `[T, n_mels]`.
    pub fn forward(&self, mel: &Array) -> mlx::Result<Array> {
        self.projector.forward(&self.encode(mel)?)
    }
}
