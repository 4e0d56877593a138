//! One decoding step of a whole pre-LN transformer decoder layer (Whisper's,
//! for one) as a single primitive of this crate's CPU kernels: the same
//! values as the layer's ops, without their ~30 dispatches per token.

use crate::array::{from_array_vec, to_array_vec};
use crate::ffi::ffi;
use crate::quant::QuantizedMatrix;
use crate::{Array, Error, Result};

/// A projection's matrix `[out, in]`: dense (f32 or f16) or quantized.
#[derive(Clone, Copy, Debug)]
pub enum StepMatrix<'a> {
    Dense(&'a Array),
    Quantized(&'a QuantizedMatrix),
}

/// A projection of a [`DecoderLayerWeights`] and its bias (`[out]`, f32).
#[derive(Clone, Copy, Debug)]
pub struct StepProjection<'a> {
    pub matrix: StepMatrix<'a>,
    pub bias: &'a Array,
}

/// A pre-LN decoder layer (Whisper's, for one): self-attention over a key/value
/// cache, cross-attention over an encoder's keys and values, a GELU MLP, each
/// after a layer norm and added to the residual stream.
#[derive(Clone, Copy, Debug)]
pub struct DecoderLayerWeights<'a> {
    pub heads: i32,
    pub eps: f32,
    /// Weight and bias of the norms before self-attention, cross-attention and the MLP.
    pub norms: [(&'a Array, &'a Array); 3],
    /// Stacked query/key/value, self-attention output, cross-attention
    /// query, cross-attention output, MLP in, MLP out; all dense, or all
    /// quantized alike.
    pub projections: [StepProjection<'a>; 6],
}

/// What [`DecoderLayerWeights::step`] returns: the layer's output and the caches.
#[derive(Debug)]
pub struct DecoderLayerStep {
    pub x: Array,
    pub keys: Array,
    pub values: Array,
}

/// Rows a [`DecoderLayerWeights::step`] takes at most (its products read
/// each matrix once for up to this many rows).
pub const DECODER_STEP_MAX_ROWS: i32 = 8;

/// Whether [`DecoderLayerWeights::step`] runs here: the custom kernels on
/// and the CPU backend by default.
pub fn decoder_layer_steps_available() -> bool {
    ffi::custom_kernels_active()
}

impl DecoderLayerWeights<'_> {
    /// The layer applied to one new position per row, `x` `[B, 1, D]` with B
    /// at most [`DECODER_STEP_MAX_ROWS`],
    /// as one primitive (the same kernels, so the same values, as the layer's
    /// ops, without ~30 dispatches). `keys` and `values`
    /// (`[B, heads, capacity, D / heads]`, f32) are the self-attention caches
    /// with positions `..position` filled; this position is written in place
    /// when nothing else holds them. `cross_keys`/`cross_values` are
    /// `[B or 1, heads, frames, D / heads]`, f16 or f32. An error when
    /// [`decoder_layer_steps_available`] is false or the shapes do not fit.
    pub fn step(
        &self,
        x: &Array,
        keys: Array,
        values: Array,
        position: i32,
        cross_keys: &Array,
        cross_values: &Array,
    ) -> Result<DecoderLayerStep> {
        let mut inputs = vec![x, &keys, &values, cross_keys, cross_values];
        inputs.extend(self.norms.iter().flat_map(|(w, b)| [*w, *b]));
        // Quantization of the first projection (0, 0 when dense); the others must match.
        let (group_size, bits) = match self.projections[0].matrix {
            StepMatrix::Quantized(q) => (q.group_size, q.bits),
            StepMatrix::Dense(_) => (0, 0),
        };
        for p in &self.projections {
            match p.matrix {
                StepMatrix::Quantized(m) if (m.group_size, m.bits) == (group_size, bits) => {
                    inputs.extend([&m.weight, &m.scales, &m.biases])
                }
                StepMatrix::Dense(m) if group_size == 0 => inputs.push(m),
                _ => {
                    return Err(Error::Mlx(
                        "decoder layer step: projections stored differently".into(),
                    ))
                }
            }
            inputs.push(p.bias);
        }
        let packed = to_array_vec(&inputs);
        // Only the primitive may hold the caches, so that it writes them in place.
        drop(inputs);
        drop((keys, values));
        let raw =
            ffi::decoder_layer_step(&packed, self.heads, position, group_size, bits, self.eps)?;
        drop(packed);
        let [x, keys, values]: [Array; 3] = from_array_vec(&raw)?.try_into().map_err(|_| {
            Error::Mlx("decoder layer step: the kernels cannot take these inputs".into())
        })?;
        Ok(DecoderLayerStep { x, keys, values })
    }
}
