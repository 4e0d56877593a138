//! Layers shared by the models, each loaded from [`Weights`] by name prefix.

use mlx::fast;
use mlx::kernels::{self, LinearEpilogue};
use mlx::quant::QuantizedMatrix;
use mlx::{Array, Dtype};

use crate::quantization::Activations;
use crate::weights::{WeightError, Weights};

type Result<T> = std::result::Result<T, WeightError>;

/// A `[rows, cols]` matrix stored dense, or affine-quantized along `cols`.
#[derive(Debug, Clone)]
pub enum Matrix {
    Dense(Array),
    Quantized(QuantizedMatrix),
}

impl Matrix {
    /// Loads `{prefix}.weight`; quantized when `{prefix}.scales` exists.
    fn load(w: &Weights, prefix: &str, rows: i32, cols: i32) -> Result<Matrix> {
        let name = format!("{prefix}.weight");
        if !w.contains(&format!("{prefix}.scales")) {
            return Ok(Matrix::Dense(w.get_shaped(&name, &[rows, cols])?));
        }
        let q = w
            .quantization()
            .ok_or_else(|| WeightError::NoQuantization { name: name.clone() })?;
        let groups = cols / q.group_size;
        Ok(Matrix::Quantized(QuantizedMatrix {
            weight: w.get_shaped(&name, &[rows, cols * q.bits / 32])?,
            scales: w.get_shaped(&format!("{prefix}.scales"), &[rows, groups])?,
            biases: w.get_shaped(&format!("{prefix}.biases"), &[rows, groups])?,
            group_size: q.group_size,
            bits: q.bits,
            int8_activations: w.activations() == Activations::Int8,
        }))
    }

    /// `x @ Mᵀ` (each row of the matrix is one output feature), then `epilogue`.
    pub fn linear(&self, x: &Array, epilogue: LinearEpilogue<'_>) -> mlx::Result<Array> {
        match self {
            Matrix::Dense(m) => kernels::linear(x, m, epilogue),
            Matrix::Quantized(q) => q.linear(x, epilogue),
        }
    }

    /// Output features (rows).
    pub fn outputs(&self) -> mlx::Result<i32> {
        match self {
            Matrix::Dense(m) => m.dim(0),
            Matrix::Quantized(q) => q.weight.dim(0),
        }
    }

    fn dense(&self) -> Option<&Array> {
        match self {
            Matrix::Dense(m) => Some(m),
            Matrix::Quantized(_) => None,
        }
    }

    /// Whether products with this matrix, at any number of rows, run on the
    /// mlx crate's kernel pool rather than on OpenBLAS's threads.
    pub fn multiplies_on_kernel_pool(&self) -> bool {
        self.quantized()
            .is_some_and(QuantizedMatrix::multiplies_on_kernel_pool)
    }

    fn quantized(&self) -> Option<&QuantizedMatrix> {
        match self {
            Matrix::Quantized(q) => Some(q),
            Matrix::Dense(_) => None,
        }
    }

    /// The matrices' rows one after the other; all dense, or all quantized
    /// and multiplied alike (the rows' groups are independent of each other).
    pub fn stack(parts: &[&Matrix]) -> mlx::Result<Matrix> {
        let dense: Option<Vec<&Array>> = parts.iter().map(|p| p.dense()).collect();
        if let Some(dense) = dense {
            return Ok(Matrix::Dense(mlx::concatenate(&dense, 0)?));
        }
        // Not all dense and none empty (those went above): all quantized, or mixed.
        let quantized: Option<Vec<&QuantizedMatrix>> =
            parts.iter().map(|p| p.quantized()).collect();
        let Some(quantized) = quantized else {
            return Err(mlx::Error::Mlx(
                "cannot stack dense and quantized matrices".into(),
            ));
        };
        let first = quantized[0];
        let alike = |q: &QuantizedMatrix| {
            (q.group_size, q.bits, q.int8_activations)
                == (first.group_size, first.bits, first.int8_activations)
        };
        if !quantized.iter().all(|q| alike(q)) {
            return Err(mlx::Error::Mlx(
                "cannot stack differently quantized matrices".into(),
            ));
        }
        let join = |part: fn(&QuantizedMatrix) -> &Array| {
            let arrays: Vec<&Array> = quantized.iter().map(|q| part(q)).collect();
            mlx::concatenate(&arrays, 0)
        };
        Ok(Matrix::Quantized(QuantizedMatrix {
            weight: join(|q| &q.weight)?,
            scales: join(|q| &q.scales)?,
            biases: join(|q| &q.biases)?,
            ..first.clone()
        }))
    }

    /// The rows at `indices`, dequantized if needed.
    pub fn rows(&self, indices: &Array) -> mlx::Result<Array> {
        match self {
            Matrix::Dense(m) => m.take(indices, 0),
            Matrix::Quantized(q) => QuantizedMatrix {
                weight: q.weight.take(indices, 0)?,
                scales: q.scales.take(indices, 0)?,
                biases: q.biases.take(indices, 0)?,
                ..q.clone()
            }
            .dequantize(),
        }
    }

    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            Matrix::Dense(m) => vec![m],
            Matrix::Quantized(q) => vec![&q.weight, &q.scales, &q.biases],
        }
    }
}

/// `y = x Wᵀ + b` with `W` of shape `[out, in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Matrix,
    pub bias: Option<Array>,
}

impl Linear {
    pub fn load(w: &Weights, prefix: &str, input: i32, output: i32, bias: bool) -> Result<Linear> {
        let bias = if bias {
            Some(w.get_shaped(&format!("{prefix}.bias"), &[output])?)
        } else {
            None
        };
        Ok(Linear {
            weight: Matrix::load(w, prefix, output, input)?,
            bias,
        })
    }

    /// Keeps a dense f32 weight in f16 when that changes no value: layers
    /// applied a token at a time (the decoder's) then read half the bytes.
    pub fn store_f16_when_exact(&mut self) -> mlx::Result<()> {
        if let Matrix::Dense(m) = &self.weight {
            self.weight = Matrix::Dense(kernels::f16_if_exact(m)?);
        }
        Ok(())
    }

    /// The layers' outputs one after the other (`[Σ out, in]`): one product
    /// for several projections of the same input. A missing bias is zeros.
    pub fn stack(parts: &[Linear]) -> mlx::Result<Linear> {
        let weight = Matrix::stack(&parts.iter().map(|p| &p.weight).collect::<Vec<_>>())?;
        let dtype = parts.iter().find_map(|p| p.bias.as_ref().map(Array::dtype));
        let bias = match dtype {
            Some(dtype) => {
                let biases = parts
                    .iter()
                    .map(|p| match &p.bias {
                        Some(b) => Ok(b.clone()),
                        None => Array::zeros(&[p.weight.outputs()?], dtype),
                    })
                    .collect::<mlx::Result<Vec<_>>>()?;
                Some(mlx::concatenate(&biases.iter().collect::<Vec<_>>(), 0)?)
            }
            None => None,
        };
        Ok(Linear { weight, bias })
    }

    fn apply(&self, x: &Array, gelu: bool, residual: Option<&Array>) -> mlx::Result<Array> {
        let epilogue = LinearEpilogue {
            bias: self.bias.as_ref(),
            gelu,
            residual,
        };
        self.weight.linear(x, epilogue)
    }

    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        self.apply(x, false, None)
    }

    /// `gelu(x Wᵀ + b)`: one kernel when decoding.
    pub fn forward_gelu(&self, x: &Array) -> mlx::Result<Array> {
        self.apply(x, true, None)
    }

    /// `residual + x Wᵀ + b`: one kernel when decoding.
    pub fn forward_residual(&self, x: &Array, residual: &Array) -> mlx::Result<Array> {
        self.apply(x, false, Some(residual))
    }
}

/// Layer normalization over the last axis with learned scale and shift.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Array,
    pub bias: Array,
    pub eps: f32,
}

impl LayerNorm {
    pub fn load(w: &Weights, prefix: &str, dims: i32) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: w.get_shaped(&format!("{prefix}.weight"), &[dims])?,
            bias: w.get_shaped(&format!("{prefix}.bias"), &[dims])?,
            eps: 1e-5,
        })
    }

    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        fast::layer_norm(x, Some(&self.weight), Some(&self.bias), self.eps)
    }
}

/// Root-mean-square normalization over the last axis with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub weight: Array,
    pub eps: f32,
}

impl RmsNorm {
    pub fn load(w: &Weights, prefix: &str, dims: i32, eps: f32) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: w.get_shaped(&format!("{prefix}.weight"), &[dims])?,
            eps,
        })
    }

    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        fast::rms_norm(x, Some(&self.weight), self.eps)
    }
}

/// `[B, L, D]` → `[B, H, L, D / H]` (a view): the heads of multi-head
/// attention in front of time.
pub fn split_heads(x: &Array, heads: i32) -> mlx::Result<Array> {
    let (b, l, d) = (x.dim(0)?, x.dim(1)?, x.dim(2)?);
    x.reshape(&[b, l, heads, d / heads])?
        .transpose(&[0, 2, 1, 3])
}

/// `[B, H, L, D / H]` → `[B, L, D]`: the heads side by side again.
pub fn merge_heads(x: &Array) -> mlx::Result<Array> {
    let (b, l) = (x.dim(0)?, x.dim(2)?);
    x.transpose(&[0, 2, 1, 3])?.reshape(&[b, l, -1])
}

/// A token embedding table `[vocab, dims]`, also usable as a tied output layer.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub weight: Matrix,
}

impl Embedding {
    /// Loads the table; an f32 table whose values are all f16 values (a
    /// checkpoint published in f16, as Whisper's are) is kept in f16: the
    /// output projection then reads half the bytes and computes the same
    /// products (rows are widened exactly, sums stay f32).
    pub fn load(w: &Weights, prefix: &str, vocab: i32, dims: i32) -> Result<Embedding> {
        let weight = match Matrix::load(w, prefix, vocab, dims)? {
            Matrix::Dense(table) => Matrix::Dense(kernels::f16_if_exact(&table)?),
            quantized => quantized,
        };
        Ok(Embedding { weight })
    }

    /// The embedding of each token id in `ids` (f32 for an f16 table).
    pub fn forward(&self, ids: &Array) -> mlx::Result<Array> {
        let rows = self.weight.rows(ids)?;
        if rows.dtype() == Dtype::F16 {
            return rows.astype(Dtype::F32);
        }
        Ok(rows)
    }

    /// Logits `x Eᵀ` over the vocabulary (weights tied to the embedding).
    pub fn as_linear(&self, x: &Array) -> mlx::Result<Array> {
        self.weight.linear(x, LinearEpilogue::default())
    }
}

/// A 1-D convolution over `[N, L, C_in]` input with weight `[C_out, K, C_in]`.
#[derive(Debug, Clone)]
pub struct Conv1d {
    pub weight: Array,
    pub bias: Array,
    pub stride: i32,
    pub padding: i32,
}

impl Conv1d {
    pub fn load(
        w: &Weights,
        prefix: &str,
        input: i32,
        output: i32,
        kernel: i32,
        stride: i32,
    ) -> Result<Conv1d> {
        Ok(Conv1d {
            weight: w.get_shaped(&format!("{prefix}.weight"), &[output, kernel, input])?,
            bias: w.get_shaped(&format!("{prefix}.bias"), &[output])?,
            stride,
            padding: kernel / 2,
        })
    }

    pub fn forward(&self, x: &Array) -> mlx::Result<Array> {
        x.conv1d(&self.weight, self.stride, self.padding, 1, 1)?
            .add(&self.bias)
    }
}

/// Hidden and cell state of an [`Lstm`], each `[batch, hidden]`.
#[derive(Debug, Clone)]
pub struct LstmState {
    pub h: Array,
    pub c: Array,
}

/// A PyTorch-layout LSTM layer, one direction: gates stacked as
/// input, forget, cell, output in `weight_ih` `[4H, in]` and `weight_hh`
/// `[4H, H]`. The input projection of every step is one product; only the
/// `h Wₕₕᵀ` product and the gates run step by step.
#[derive(Debug, Clone)]
pub struct Lstm {
    pub weight_ih: Array,
    pub weight_hh: Array,
    /// `bias_ih + bias_hh`.
    pub bias: Array,
    pub hidden: i32,
}

impl Lstm {
    /// Loads `{prefix}.weight_ih{suffix}`, `weight_hh`, `bias_ih` and
    /// `bias_hh` (PyTorch's names: suffix `_l0`, `_l1_reverse`, … for
    /// `nn.LSTM`, empty for `nn.LSTMCell`).
    pub fn load(w: &Weights, prefix: &str, suffix: &str, input: i32, hidden: i32) -> Result<Lstm> {
        let get =
            |name: &str, shape: &[i32]| w.get_shaped(&format!("{prefix}.{name}{suffix}"), shape);
        let bias = get("bias_ih", &[4 * hidden])?.add(&get("bias_hh", &[4 * hidden])?)?;
        Ok(Lstm {
            weight_ih: get("weight_ih", &[4 * hidden, input])?,
            weight_hh: get("weight_hh", &[4 * hidden, hidden])?,
            bias,
            hidden,
        })
    }

    /// Zero state for `batch` sequences.
    pub fn zero_state(&self, batch: i32) -> mlx::Result<LstmState> {
        let zeros = Array::zeros(&[batch, self.hidden], Dtype::F32)?;
        Ok(LstmState {
            h: zeros.clone(),
            c: zeros,
        })
    }

    /// Runs over `x` `[batch, time, in]` from `state` (zeros when `None`),
    /// first step to last, or last to first when `reverse` (outputs stay in
    /// input order). Returns every step's `h` `[batch, time, H]` and the
    /// state after the last step taken.
    pub fn forward(
        &self,
        x: &Array,
        state: Option<&LstmState>,
        reverse: bool,
    ) -> mlx::Result<(Array, LstmState)> {
        let projected = kernels::linear(
            x,
            &self.weight_ih,
            LinearEpilogue {
                bias: Some(&self.bias),
                ..LinearEpilogue::default()
            },
        )?;
        let zero;
        let state = match state {
            Some(s) => s,
            None => {
                zero = self.zero_state(x.dim(0)?)?;
                &zero
            }
        };
        let (y, h, c) = kernels::lstm(&projected, &self.weight_hh, &state.h, &state.c, reverse)?;
        Ok((y, LstmState { h, c }))
    }
}
