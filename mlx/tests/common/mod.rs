//! Shared helpers for the `mlx` integration tests: deterministic inputs,
//! naive reference computations over plain `Vec`s, and tolerant comparisons.
//!
//! Nothing here calls MLX to compute an expected value: MLX is only used to
//! build the input arrays and to read results back.

#![allow(dead_code)]

use mlx::kernels::{self, Isa};
use mlx::{Array, Dtype};

/// A 64-bit linear congruential generator (Knuth's MMIX constants).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1))
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    /// Uniform in `[0, 1)` with 24 bits of resolution.
    pub fn unit(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }

    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

/// `n` values in `[lo, hi)` from a generator seeded with `seed`.
pub fn rand_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    Lcg::new(seed).vec(n, lo, hi)
}

/// `n` values in `[-1, 1)`.
pub fn data(seed: u64, n: usize) -> Vec<f32> {
    rand_vec(seed, n, -1.0, 1.0)
}

pub fn numel(shape: &[i32]) -> usize {
    shape.iter().map(|&d| d as usize).product()
}

/// Row-major strides in elements.
pub fn strides(shape: &[i32]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as usize;
    }
    s
}

/// Multi-index of flat position `flat` in a row-major array of `shape`.
pub fn unravel(mut flat: usize, shape: &[i32]) -> Vec<usize> {
    let mut idx = vec![0usize; shape.len()];
    for i in (0..shape.len()).rev() {
        let d = shape[i] as usize;
        idx[i] = flat % d;
        flat /= d;
    }
    idx
}

pub fn ravel(idx: &[usize], shape: &[i32]) -> usize {
    idx.iter().zip(strides(shape)).map(|(&i, s)| i * s).sum()
}

pub fn norm_axis(axis: i32, ndim: usize) -> usize {
    if axis < 0 {
        (axis + ndim as i32) as usize
    } else {
        axis as usize
    }
}

/// An f32 array (panics on error: test inputs are always valid).
pub fn arr(values: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(values, shape).expect("from_slice")
}

/// Reads an f32 array back, checking its dtype.
pub fn read(a: &Array) -> Vec<f32> {
    assert_eq!(a.dtype(), Dtype::F32, "expected an f32 result");
    a.to_vec::<f32>().expect("to_vec")
}

/// An f16 array's values widened to f32.
pub fn read_f16(a: &Array) -> Vec<f32> {
    a.to_vec::<half::f16>()
        .unwrap()
        .iter()
        .map(|v| v.to_f32())
        .collect()
}

/// GELU's exact form in f64: 0.5 x (1 + erf(x / sqrt 2)).
pub fn gelu_naive(x: f32) -> f64 {
    let x = x as f64;
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Elementwise `|a - e| <= atol + rtol * |e|`; NaNs must match NaNs and
/// infinities must match exactly.
pub fn assert_close(actual: &[f32], expected: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: length {} vs expected {}",
        actual.len(),
        expected.len()
    );
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let a = a as f64;
        if e.is_nan() {
            assert!(a.is_nan(), "{what}[{i}]: got {a}, expected NaN");
            continue;
        }
        if e.is_infinite() {
            assert_eq!(a, e, "{what}[{i}]: got {a}, expected {e}");
            continue;
        }
        let tol = atol + rtol * e.abs();
        assert!(
            (a - e).abs() <= tol,
            "{what}[{i}]: got {a}, expected {e} (diff {:e} > tol {tol:e})",
            (a - e).abs()
        );
    }
}

/// Checks shape, dtype (f32) and values of `a`.
pub fn check(a: &Array, shape: &[i32], expected: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(a.shape(), shape, "{what}: shape");
    assert_eq!(a.dtype(), Dtype::F32, "{what}: dtype");
    assert_close(&read(a), expected, atol, rtol, what);
}

/// Permutes axes: `out.shape[i] = shape[perm[i]]`.
pub fn permute<T: Copy>(values: &[T], shape: &[i32], perm: &[usize]) -> (Vec<T>, Vec<i32>) {
    let out_shape: Vec<i32> = perm.iter().map(|&p| shape[p]).collect();
    let in_strides = strides(shape);
    let out = (0..numel(&out_shape))
        .map(|flat| {
            let oidx = unravel(flat, &out_shape);
            let src: usize = oidx
                .iter()
                .enumerate()
                .map(|(i, &o)| o * in_strides[perm[i]])
                .sum();
            values[src]
        })
        .collect();
    (out, out_shape)
}

/// NumPy broadcast of two shapes (None when incompatible).
pub fn broadcast_shapes(a: &[i32], b: &[i32]) -> Option<Vec<i32>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Element of a (possibly lower-rank) broadcast input for output index `oidx`.
pub fn broadcast_index(oidx: &[usize], shape: &[i32]) -> usize {
    let lead = oidx.len() - shape.len();
    let st = strides(shape);
    (0..shape.len())
        .map(|i| {
            if shape[i] == 1 {
                0
            } else {
                oidx[lead + i] * st[i]
            }
        })
        .sum()
}

/// Values of `x` (of `shape`) broadcast to `target`.
pub fn broadcast<T: Copy>(x: &[T], shape: &[i32], target: &[i32]) -> Vec<T> {
    (0..numel(target))
        .map(|flat| x[broadcast_index(&unravel(flat, target), shape)])
        .collect()
}

/// `f(a, b)` with NumPy broadcasting; returns values and the output shape.
pub fn zip_broadcast<A: Copy, B: Copy, R>(
    a: &[A],
    a_shape: &[i32],
    b: &[B],
    b_shape: &[i32],
    f: impl Fn(A, B) -> R,
) -> (Vec<R>, Vec<i32>) {
    let out_shape = broadcast_shapes(a_shape, b_shape).expect("broadcastable");
    let out = (0..numel(&out_shape))
        .map(|flat| {
            let idx = unravel(flat, &out_shape);
            f(
                a[broadcast_index(&idx, a_shape)],
                b[broadcast_index(&idx, b_shape)],
            )
        })
        .collect();
    (out, out_shape)
}

/// Groups the elements of `x` by their index outside `axes` (all axes when
/// empty). Each group lists its elements in row-major order. Returns the
/// groups (in row-major order of the kept axes) and the output shape with
/// or without the reduced axes kept as 1.
pub fn reduce_groups<T: Copy>(
    x: &[T],
    shape: &[i32],
    axes: &[i32],
    keepdims: bool,
) -> (Vec<Vec<T>>, Vec<i32>) {
    let nd = shape.len();
    let axes: Vec<usize> = if axes.is_empty() {
        (0..nd).collect()
    } else {
        axes.iter().map(|&a| norm_axis(a, nd)).collect()
    };
    let kept_shape: Vec<i32> = (0..nd)
        .map(|i| if axes.contains(&i) { 1 } else { shape[i] })
        .collect();
    let mut groups: Vec<Vec<T>> = vec![Vec::new(); numel(&kept_shape)];
    for (flat, &v) in x.iter().enumerate() {
        let mut idx = unravel(flat, shape);
        for &a in &axes {
            idx[a] = 0;
        }
        groups[ravel(&idx, &kept_shape)].push(v);
    }
    let out_shape = if keepdims {
        kept_shape
    } else {
        (0..nd)
            .filter(|i| !axes.contains(i))
            .map(|i| shape[i])
            .collect()
    };
    (groups, out_shape)
}

/// The lanes of `x` along `axis`: one Vec per position of the other axes,
/// in row-major order, plus a function-free way to write them back.
pub fn lanes<T: Copy>(x: &[T], shape: &[i32], axis: i32) -> Vec<Vec<T>> {
    reduce_groups(x, shape, &[axis], true).0
}

/// Inverse of [`lanes`]: writes lanes (same ordering) into a row-major array.
pub fn from_lanes<T: Copy + Default>(lanes: &[Vec<T>], shape: &[i32], axis: i32) -> Vec<T> {
    let axis = norm_axis(axis, shape.len());
    let mut kept = shape.to_vec();
    kept[axis] = 1;
    (0..numel(shape))
        .map(|flat| {
            let idx = unravel(flat, shape);
            let mut k = idx.clone();
            k[axis] = 0;
            lanes[ravel(&k, &kept)][idx[axis]]
        })
        .collect()
}

/// Row-major `[m, k] x [k, n]` in f64.
pub fn matmul_naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            out[i * n + j] = acc;
        }
    }
    out
}

/// The error function to ~1e-15 relative accuracy, from the everywhere
/// positive series `erf x = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!`.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() > 6.0 {
        return x.signum();
    }
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    loop {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
        if term.abs() <= 1e-17 * sum.abs() {
            break;
        }
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

/// Stable softmax of one lane in f64.
pub fn softmax_naive(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|&v| v / s).collect()
}

pub fn logsumexp_naive(x: &[f64]) -> f64 {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + x.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}

/// The distinct error text of a failed call, for message checks.
pub fn err_text<T: std::fmt::Debug>(r: mlx::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.to_string(),
    }
}

/// Caps the kernels' instruction-set level while it lives; the previous cap
/// comes back on drop, also when a check fails.
pub struct IsaCap(Isa);

impl IsaCap {
    pub fn set(level: Isa) -> IsaCap {
        IsaCap(kernels::set_isa_cap(level))
    }
}

impl Drop for IsaCap {
    fn drop(&mut self) {
        kernels::set_isa_cap(self.0);
    }
}

/// Runs `case` once per instruction-set level this CPU supports, the kernels
/// capped at it; `case` checks the kernels' results (against references
/// computed once, outside) and returns them. Only the AVX2 and later paths
/// fuse multiplies and adds, so with `fma_visible` (products enough for the
/// rounding to differ somewhere) the baseline's results must differ from
/// AVX2's: the cap reached the kernels and each level's path ran.
pub fn at_each_isa(what: &str, fma_visible: bool, mut case: impl FnMut(Isa) -> Vec<f32>) {
    let mut results = Vec::new();
    for level in Isa::ALL.into_iter().filter(|l| l.supported()) {
        let _cap = IsaCap::set(level);
        assert_eq!(kernels::active_isa(), level, "{what}");
        let bits: Vec<u32> = case(level).iter().map(|v| v.to_bits()).collect();
        results.push((level, bits));
    }
    let at = |level| results.iter().find(|(l, _)| *l == level).map(|(_, b)| b);
    if let (true, Some(baseline), Some(avx2)) = (fma_visible, at(Isa::Baseline), at(Isa::Avx2)) {
        assert_ne!(baseline, avx2, "{what}: the same bits at baseline and AVX2");
    }
}
