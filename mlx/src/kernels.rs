//! This crate's own CPU kernels: the switch that puts them in place of some of
//! MLX's ops, their thread pool, and the ops built on them (a linear layer
//! with its epilogue fused, an LSTM layer's recurrence, row selection and
//! row-major copies of caches, f16 narrowing, a host log-sum-exp). Each op says what runs where the kernels
//! do not (GPU backends, or the kernels switched off).

use crate::array::{from_array_vec, ptr_of};
use crate::ffi::ffi;
use crate::{Array, Dtype, Result};

/// What a linear layer applies to `x wᵀ`, in this order: adds `bias`
/// (`[out]`), applies GELU (the exact, erf form), adds `residual` (the
/// output's shape). Each part is optional.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinearEpilogue<'a> {
    pub bias: Option<&'a Array>,
    pub gelu: bool,
    pub residual: Option<&'a Array>,
}

/// `x wᵀ` for a weight `[out, in]`, then `epilogue`. On the CPU with few
/// rows (decoding) the epilogue runs inside the matmul kernel: one op and
/// one pass over the output instead of up to four; otherwise it is MLX's
/// ops, with the same values.
pub fn linear(x: &Array, weight: &Array, epilogue: LinearEpilogue<'_>) -> Result<Array> {
    // SAFETY: the pointers are null or borrowed from live arrays for the call.
    let raw = unsafe {
        ffi::linear(
            x.raw(),
            weight.raw(),
            ptr_of(epilogue.bias),
            epilogue.gelu,
            ptr_of(epilogue.residual),
        )?
    };
    Ok(Array::from_raw(raw))
}

/// Transformer-XL's relative-position self-attention (Dai et al., 2019,
/// §3.3) over `T` frames, heads split off: `softmax(scale (q_u kᵀ + R)) v`
/// where `R[i, j] = q_v[i] · p[T - 1 - i + j]`, `p` `[1, H, 2T - 1, D]` the
/// projected embeddings of the offsets `T - 1, …, 1 - T` (query minus key)
/// and `q_u`, `q_v` the queries with the content and position biases added.
/// `q_u`, `q_v`, `k` are `[B, H, T, D]`, `v` `[B, H, T, Dv]`; returns
/// `[B, H, T, Dv]`.
///
/// On the CPU backend, f32, one primitive per call: per head, BLAS products
/// for both kinds of scores and the values, with the skewed sum and the
/// softmax in one pass over the scores on the kernels' pool. Elsewhere MLX's
/// ops: the position scores read skewed from their product as the additive
/// mask of [`crate::fast::scaled_dot_product_attention`].
pub fn rel_pos_attention(
    q_u: &Array,
    q_v: &Array,
    k: &Array,
    v: &Array,
    p: &Array,
    scale: f32,
) -> Result<Array> {
    Ok(Array::from_raw(ffi::rel_pos_attention(
        q_u.raw(),
        q_v.raw(),
        k.raw(),
        v.raw(),
        p.raw(),
        scale,
    )?))
}

/// The recurrence of an LSTM layer in one direction, gates in PyTorch's
/// order (input, forget, cell, output): `projected` `[B, T, 4H]` holds every
/// step's input product with both biases (`x W_ihᵀ + b_ih + b_hh`), `w_hh` is
/// `[4H, H]`, `h0` and `c0` `[B, H]` the state before the first step taken,
/// the last step first when `reverse`. Returns every step's `h` `[B, T, H]`
/// in input order, then `h` and `c` after the last step taken (`h0` and `c0`
/// when `T` is 0).
///
/// On the CPU backend, f32, one primitive of this crate's kernels runs all
/// steps: per step one vectorized pass over `W_hh` (packed once per call;
/// read as it is for one sequence of a few steps) computes `h W_hhᵀ` and the
/// gates (exponentials within a few ulp), split over the kernels' threads by
/// hidden units.
/// Elsewhere (GPU backends, the kernels off) the same equations run as MLX
/// ops step by step.
pub fn lstm(
    projected: &Array,
    w_hh: &Array,
    h0: &Array,
    c0: &Array,
    reverse: bool,
) -> Result<(Array, Array, Array)> {
    let raw = ffi::lstm(projected.raw(), w_hh.raw(), h0.raw(), c0.raw(), reverse)?;
    match <[Array; 3]>::try_from(from_array_vec(&raw)?) {
        Ok([y, h, c]) => Ok((y, h, c)),
        Err(_) => lstm_ops(projected, w_hh, h0, c0, reverse),
    }
}

/// [`lstm`] as MLX ops, one step after the other.
fn lstm_ops(
    projected: &Array,
    w_hh: &Array,
    h0: &Array,
    c0: &Array,
    reverse: bool,
) -> Result<(Array, Array, Array)> {
    let hidden = w_hh.dim(1)?;
    let steps = projected.dim(1)?;
    let w_hh_t = w_hh.transpose(&[1, 0])?;
    let (mut h, mut c) = (h0.clone(), c0.clone());
    let mut outputs = Vec::with_capacity(steps.max(0) as usize);
    let order: Box<dyn Iterator<Item = i32>> = if reverse {
        Box::new((0..steps).rev())
    } else {
        Box::new(0..steps)
    };
    for t in order {
        let gates = projected
            .slice_axis(1, t, t + 1)?
            .squeeze(&[1])?
            .add(&h.matmul(&w_hh_t)?)?;
        let gate = |k: i32| gates.slice_axis(1, k * hidden, (k + 1) * hidden);
        let input = gate(0)?.sigmoid()?;
        let forget = gate(1)?.sigmoid()?;
        let cell = gate(2)?.tanh()?;
        let output = gate(3)?.sigmoid()?;
        c = forget.multiply(&c)?.add(&input.multiply(&cell)?)?;
        h = output.multiply(&c.tanh()?)?;
        outputs.push(h.clone());
    }
    if outputs.is_empty() {
        let y = Array::zeros(&[projected.dim(0)?, 0, hidden], projected.dtype())?;
        return Ok((y, h, c));
    }
    if reverse {
        outputs.reverse();
    }
    let y = crate::stack(&outputs.iter().collect::<Vec<_>>(), 1)?;
    Ok((y, h, c))
}

/// Turns this crate's own CPU kernels on or off and returns the previous
/// setting. On the CPU backend, f32 [`Array::softmax`] over the last axis,
/// [`Array::gelu`], [`Array::silu`], [`Array::glu`], [`crate::fast::layer_norm`] and
/// [`crate::fast::scaled_dot_product_attention`] without an array mask run as
/// vectorized, multi-threaded primitives of this crate; switched off (or with
/// `MLX_ASR_CUSTOM_KERNELS=0` in the environment at start-up), and on GPU
/// backends, they are MLX's own ops (as are the other ops of this module). Affects arrays built afterwards.
pub fn set_custom_kernels(on: bool) -> bool {
    ffi::set_custom_kernels(on)
}

/// Whether this crate's CPU kernels are in use (see [`set_custom_kernels`]).
pub fn custom_kernels() -> bool {
    ffi::custom_kernels()
}

/// `a` (f32) in f16 when every value is exactly an f16 value, so that f16
/// storage changes nothing; otherwise `a` as it is. Evaluates `a`.
pub fn f16_if_exact(a: &Array) -> Result<Array> {
    Ok(Array::from_raw(ffi::f16_if_exact(a.raw())?))
}

/// A row-major copy of `a` as `dtype` (for example the heads of a transposed
/// view, converted to f16): on the CPU backend, for f32 `a` of up to four
/// axes and an f32 or f16 result, one multi-threaded pass of this crate's
/// kernels (f16 rounded to nearest, ties to even, as [`Array::astype`]);
/// otherwise MLX's conversion and copy.
pub fn row_major(a: &Array, dtype: Dtype) -> Result<Array> {
    Ok(Array::from_raw(ffi::row_major(a.raw(), dtype as u8)?))
}

/// Rows `rows` of a `[B, H, C, D]` cache (hypotheses × heads × capacity ×
/// head width) as `[rows.len(), H, C, D]`, of which only the first `filled`
/// positions of axis 2 are defined: on the CPU backend one multi-threaded
/// copy of just those positions; otherwise MLX's `take` (all of them). For
/// caches that write every later position before reading it. A row out of
/// range is an error.
pub fn select_rows(a: &Array, rows: &[i32], filled: i32) -> Result<Array> {
    Ok(Array::from_raw(ffi::select_rows(a.raw(), rows, filled)?))
}

/// `log Σ exp(x)` of a host buffer, with the vectorized exp of the CPU
/// kernels (within a few ulp of the exact value, summed in f64 lanes);
/// `-inf` for an empty or all `-inf` slice. A host helper, not an MLX op: the
/// decoder's token rules normalize every vocabulary row with it.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    ffi::log_sum_exp(x)
}

/// Whether quantized products with `int8_activations` run as int8 products
/// here: the custom kernels on, the CPU backend by default, and an active
/// level ([`active_isa`]) of at least [`Isa::Avx2`]. The products sum in
/// int32 with AVX-512 VNNI, AVX-VNNI or AVX2, whichever is the best allowed,
/// and give the same values with each.
pub fn int8_products_available() -> bool {
    ffi::int8_products_available()
}

/// The instruction set int8 products sum with now: [`Isa::Avx512Vnni`],
/// [`Isa::AvxVnni`] or [`Isa::Avx2`] (the best the CPU has within the cap;
/// a CPU with AVX-512 but no VNNI sums with AVX2), `None` where
/// [`int8_products_available`] is false.
pub fn int8_products_isa() -> Option<Isa> {
    Some(Isa::from_code(ffi::int8_products_isa())).filter(|&l| l != Isa::Baseline)
}

/// Whether attention with many queries and 64-wide heads (every Whisper
/// encoder, and prompts) runs as the crate's fused kernel now (AVX2 or
/// better, kernels on, CPU stream), rather than a BLAS product, a softmax
/// pass over the `[L, S]` scores and a second product.
pub fn fused_attention_available() -> bool {
    ffi::fused_attention_available()
}

/// An instruction-set level of the CPU kernels. Each includes the ones
/// before it; a kernel takes the best path of a level at most
/// [`active_isa`]. `AvxVnni` is the 256-bit form of the int8 dot-product
/// instructions (Intel since Alder Lake, AMD since Zen 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable loops (SSE2 on x86-64, whatever the compiler makes elsewhere).
    Baseline,
    /// AVX2 + FMA + F16C (x86-64-v3).
    Avx2,
    /// AVX2 plus 256-bit VNNI.
    AvxVnni,
    /// AVX-512 F/BW/VL.
    Avx512,
    /// AVX-512 with 512-bit VNNI.
    Avx512Vnni,
}

impl Isa {
    /// Every level, lowest first.
    pub const ALL: [Isa; 5] = [
        Isa::Baseline,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512,
        Isa::Avx512Vnni,
    ];

    /// The name `MLX_ASR_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }

    fn from_code(code: u8) -> Isa {
        Isa::ALL[usize::from(code).min(Isa::ALL.len() - 1)]
    }

    /// Whether this CPU has the level (whatever the cap).
    pub fn supported(self) -> bool {
        ffi::isa_has(self as u8)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isa {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Isa, String> {
        Isa::ALL
            .into_iter()
            .find(|level| level.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Isa::ALL.iter().map(|l| l.name()).collect();
                format!(
                    "`{s}` is not an instruction-set level ({})",
                    names.join(", ")
                )
            })
    }
}

/// The highest level this CPU supports.
pub fn supported_isa() -> Isa {
    Isa::from_code(ffi::isa_supported())
}

/// The level the CPU kernels run at: the highest supported one within the
/// cap.
pub fn active_isa() -> Isa {
    Isa::from_code(ffi::isa_active())
}

/// The cap on the kernels' level: `MLX_ASR_ISA` in the environment at
/// start-up, else none ([`Isa::Avx512Vnni`]).
pub fn isa_cap() -> Isa {
    Isa::from_code(ffi::isa_cap())
}

/// Caps the kernels' level (so that a CPU with AVX-512 runs, and tests, the
/// AVX2 paths), returning the previous cap. Process-wide; affects kernels run
/// afterwards.
pub fn set_isa_cap(cap: Isa) -> Isa {
    Isa::from_code(ffi::set_isa_cap(cap as u8))
}

/// What is wrong with `MLX_ASR_ISA`, when it holds an unknown name (the
/// kernels then run at [`Isa::Baseline`]).
pub fn isa_env_problem() -> Option<String> {
    Some(ffi::isa_env_problem()).filter(|p| !p.is_empty())
}

/// Threads the CPU kernels split their work over, the evaluating thread
/// included (the core count, or `MLX_ASR_THREADS`).
pub fn custom_kernel_threads() -> usize {
    ffi::custom_kernel_threads().max(1) as usize
}

/// Keeps the CPU kernels' idle worker threads spinning, instead of sleeping
/// between jobs, for as long as it lives. A sleeping worker is woken through
/// the OS, which on a virtual machine can take as long as a decoder token's
/// short jobs themselves; a decoding loop holds one so that every
/// step finds the workers awake. The spinning costs a core each while held:
/// hold it around work, not idle time. Holds nest.
#[must_use = "the threads spin only while the hold lives"]
#[derive(Debug)]
pub struct ThreadHold(());

impl ThreadHold {
    /// Opens a hold (no `Default`: making one has an effect).
    pub fn hold() -> ThreadHold {
        ffi::hold_kernel_threads();
        ThreadHold(())
    }
}

impl Drop for ThreadHold {
    fn drop(&mut self) {
        ffi::release_kernel_threads();
    }
}
