//! The crate's own CPU kernels (softmax over the last axis, GELU, layer norm,
//! attention; `src/cpp/kernels/`) against naive f64 references and against
//! MLX's own ops (the kernels switched off), on odd sizes, masks, -inf rows,
//! strided inputs, lazy graphs and compiled functions.
//!
//! Each kernel runs at every instruction-set level this CPU supports (the
//! kernels' cap set to each in turn) against the same references.
//!
//! Tolerances: against the f64 references `|got - want| <= atol + rtol |want|`
//! with the atol/rtol named at each check (f32 rounding of sums over up to
//! 1500 terms); against MLX's op the same bound, as both are f32 computations
//! that round differently (MLX's exp and erf are approximations too).

mod common;

use std::sync::{Mutex, MutexGuard};

use common::*;
use mlx::fast::{self, AttentionMask};
use mlx::kernels::{self, Isa};
use mlx::quant::QuantizedMatrix;
use mlx::{Array, Dtype};

/// Tests in this file flip the process-wide kernel switch: one at a time.
static SWITCH: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    let guard = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    kernels::set_custom_kernels(true);
    guard
}

/// `f` evaluated with MLX's own ops (the kernels off), read back.
fn with_mlx_ops(f: impl Fn() -> Array) -> Vec<f32> {
    let previous = kernels::set_custom_kernels(false);
    let out = read(&f());
    kernels::set_custom_kernels(previous);
    out
}

fn softmax_naive(x: &[f32], n: usize) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|row| {
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            if m == f64::NEG_INFINITY {
                return vec![f64::NAN; row.len()];
            }
            let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn kernels_are_on_by_default_and_use_the_cores() {
    let _g = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    if std::env::var_os("MLX_ASR_CUSTOM_KERNELS").is_none() {
        assert!(kernels::custom_kernels());
    }
    assert!(kernels::custom_kernel_threads() >= 1);
}

#[test]
fn softmax_matches_reference_and_mlx_on_odd_sizes() {
    let _g = lock();
    let cases: Vec<_> = [
        (1u64, vec![1, 1]),
        (2, vec![3, 7]),
        (3, vec![2, 5, 1031]),
        (4, vec![1, 51864]),
        (5, vec![6, 40, 1500]),
        (6, vec![17]),
    ]
    .into_iter()
    .map(|(seed, shape)| {
        let n = *shape.last().unwrap() as usize;
        let x = rand_vec(seed, numel(&shape), -30.0, 30.0);
        let xa = arr(&x, &shape);
        let mlx = with_mlx_ops(|| xa.softmax(&[-1], true).unwrap());
        (xa, shape, softmax_naive(&x, n), to_f64(&mlx))
    })
    .collect();
    at_each_isa("softmax", true, |level| {
        let mut all = Vec::new();
        for (xa, shape, want, mlx) in &cases {
            let got = xa.softmax(&[-1], true).unwrap();
            check(
                &got,
                shape,
                want,
                1e-7,
                2e-6,
                &format!("softmax at {level}"),
            );
            let got = read(&got);
            assert_close(&got, mlx, 1e-7, 2e-6, &format!("softmax vs mlx at {level}"));
            all.extend(got);
        }
        all
    });
}

#[test]
fn softmax_with_infinities_and_masked_rows() {
    let _g = lock();
    let inf = f32::INFINITY;
    // Row 0: some -inf entries; row 1: all -inf (NaN, as MLX gives);
    // row 2: one finite entry among -inf; row 3: ordinary.
    let x = vec![
        0.5, -inf, 2.0, -inf, -1.0, //
        -inf, -inf, -inf, -inf, -inf, //
        -inf, -inf, 3.0, -inf, -inf, //
        1.0, 2.0, 3.0, 4.0, 5.0,
    ];
    let xa = arr(&x, &[4, 5]);
    let (want, mlx) = (
        softmax_naive(&x, 5),
        to_f64(&with_mlx_ops(|| xa.softmax(&[-1], false).unwrap())),
    );
    at_each_isa("softmax -inf", false, |level| {
        let got = xa.softmax(&[-1], false).unwrap();
        let what = format!("softmax -inf at {level}");
        check(&got, &[4, 5], &want, 1e-7, 2e-6, &what);
        let got = read(&got);
        assert_close(&got, &mlx, 1e-7, 2e-6, &format!("{what} vs mlx"));
        got
    });
}

/// `kernels::row_major` against the permuted values on the host, f16 rounded by
/// the `half` crate (to nearest, ties to even): a transposed 4-D view (a
/// layer's heads), a view whose last axis is strided, and a 2-D one; values
/// at f16's edges (subnormal, halfway between two f16s, past its largest
/// value, -0) compared bit for bit.
#[test]
fn row_major_copies_of_views_are_exact() {
    let _g = lock();
    let shape = [2, 5, 3, 24];
    let mut values = rand_vec(9, 2 * 5 * 3 * 24, -4.0, 4.0);
    let edges = [
        6.0e-8,
        -3.0e-5,
        65504.0,
        65520.0,
        1e6,
        -0.0,
        1.0 + 1.0 / 2048.0,
        2049.0,
        1.0 + 3.0 / 2048.0,
    ];
    values[..edges.len()].copy_from_slice(&edges);
    let a = arr(&values, &shape);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let cases: [(&[usize], &str); 3] = [
        (&[0, 2, 1, 3], "heads"),
        (&[0, 1, 3, 2], "strided last axis"),
        (&[1, 0, 2, 3], "outer axes swapped"),
    ];
    let flat = arr(&values[..24], &[4, 6]).transpose(&[1, 0]).unwrap();
    let (want_flat, _) = permute(&values[..24], &[4, 6], &[1, 0]);
    // Exact at every level: F16C narrows as the portable conversion does.
    at_each_isa("row_major", false, |level| {
        let mut all = Vec::new();
        for (perm, what) in cases {
            let what = format!("{what} at {level}");
            let axes: Vec<i32> = perm.iter().map(|&p| p as i32).collect();
            let view = a.transpose(&axes).unwrap();
            let (want, want_shape) = permute(&values, &shape, perm);
            let copy = kernels::row_major(&view, Dtype::F32).unwrap();
            assert_eq!(copy.shape(), want_shape, "{what}");
            assert_eq!(bits(&read(&copy)), bits(&want), "{what}, f32");
            let half_copy = kernels::row_major(&view, Dtype::F16).unwrap();
            assert_eq!(half_copy.dtype(), Dtype::F16);
            let want_half: Vec<f32> = want
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect();
            let got_half = read_f16(&half_copy);
            assert_eq!(bits(&got_half), bits(&want_half), "{what}, f16");
            all.extend(got_half);
        }
        let got_flat = read(&kernels::row_major(&flat, Dtype::F32).unwrap());
        assert_eq!(bits(&got_flat), bits(&want_flat), "2-D at {level}");
        all
    });
}

/// The decoder's log-softmax normalizer on the host: against an f64 sum, on a
/// vocabulary-sized row (logits of a real model's spread, a few suppressed),
/// an odd length below one vector, a lone finite entry, and the empty and
/// all -inf rows.
#[test]
fn log_sum_exp_matches_an_f64_reference() {
    let _g = lock();
    let naive = |x: &[f32]| {
        let m = x
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        if m == f64::NEG_INFINITY {
            return m;
        }
        m + x
            .iter()
            .map(|&v| (f64::from(v) - m).exp())
            .sum::<f64>()
            .ln()
    };
    let inf = f32::INFINITY;
    let mut vocabulary = rand_vec(7, 51864, -20.0, 12.0);
    for i in (0..vocabulary.len()).step_by(97) {
        vocabulary[i] = -inf;
    }
    let rows: Vec<_> = [
        vocabulary,
        rand_vec(8, 13, -3.0, 3.0),
        vec![-inf, 2.5, -inf],
    ]
    .into_iter()
    .map(|x| {
        let want = naive(&x);
        (x, want)
    })
    .collect();
    // One f32 per row: FMA's rounding need not show.
    at_each_isa("log_sum_exp", false, |level| {
        let mut all = Vec::new();
        for (x, want) in &rows {
            let got = kernels::log_sum_exp(x);
            assert!(
                (f64::from(got) - want).abs() <= 4e-7 * want.abs().max(1.0),
                "{} entries at {level}: {got} vs {want}",
                x.len()
            );
            all.push(got);
        }
        assert_eq!(kernels::log_sum_exp(&[]), -inf);
        assert_eq!(kernels::log_sum_exp(&[-inf, -inf]), -inf);
        all
    });
}

#[test]
fn softmax_of_views_in_lazy_graphs_and_other_axes() {
    let _g = lock();
    let x = rand_vec(7, 6 * 9, -4.0, 4.0);
    let xa = arr(&x, &[6, 9]);
    // A transposed input, inside a lazy graph.
    let (xt, _) = permute(&x, &[6, 9], &[1, 0]);
    let doubled: Vec<f32> = xt.iter().map(|v| v * 2.0).collect();
    let want: Vec<f64> = softmax_naive(&doubled, 6).iter().map(|v| v + 1.0).collect();
    // Axis 0 is MLX's op; axis 1 of a 2-D array (the last) is ours: same values.
    let b0 = to_f64(&read(
        &xa.softmax(&[0], true).unwrap().transpose(&[]).unwrap(),
    ));
    at_each_isa("softmax of views", false, |level| {
        // A new graph at each level: an evaluated array keeps its values.
        let y = xa
            .transpose(&[])
            .unwrap()
            .mul_scalar(2.0)
            .unwrap()
            .softmax(&[-1], true)
            .unwrap()
            .add_scalar(1.0)
            .unwrap();
        check(
            &y,
            &[9, 6],
            &want,
            1e-6,
            2e-6,
            &format!("softmax of a view at {level}"),
        );
        let a0 = read(&xa.transpose(&[]).unwrap().softmax(&[1], true).unwrap());
        assert_close(
            &a0,
            &b0,
            1e-7,
            2e-6,
            &format!("softmax axis 1 vs 0 at {level}"),
        );
        a0
    });
}

#[test]
fn softmax_of_f16_falls_back_to_mlx() {
    let _g = lock();
    let x = rand_vec(8, 2 * 11, -3.0, 3.0);
    let xa = arr(&x, &[2, 11]).astype(Dtype::F16).unwrap();
    let got = xa.softmax(&[-1], true).unwrap();
    assert_eq!(got.dtype(), Dtype::F16);
    let want = softmax_naive(&x, 11);
    assert_close(&read_f16(&got), &want, 1e-3, 1e-2, "f16 softmax");
}

#[test]
fn gelu_matches_reference_and_mlx() {
    let _g = lock();
    let cases: Vec<_> = [
        (10u64, vec![1001], -12.0f32, 12.0f32),
        (11, vec![3, 1536], -5.0, 5.0),
        (12, vec![2, 7, 33], -40.0, 40.0),
        (13, vec![1], 0.0, 1.0),
    ]
    .into_iter()
    .map(|(seed, shape, lo, hi)| {
        let mut x = rand_vec(seed, numel(&shape), lo, hi);
        x[0] = 0.0;
        let xa = arr(&x, &shape);
        let want: Vec<f64> = x.iter().map(|&v| gelu_naive(v)).collect();
        let mlx = to_f64(&with_mlx_ops(|| xa.gelu().unwrap()));
        (xa, shape, want, mlx)
    })
    .collect();
    // Special values.
    let special = arr(
        &[
            f32::NEG_INFINITY,
            f32::INFINITY,
            -0.0,
            1e-30,
            -1e-30,
            f32::NAN,
        ],
        &[6],
    );
    let mlx = with_mlx_ops(|| special.gelu().unwrap());
    // -inf gives NaN (-inf * 0), as MLX's composed op does.
    assert!(mlx[0].is_nan());
    assert_eq!(mlx[1], f32::INFINITY);
    at_each_isa("gelu", true, |level| {
        let mut all = Vec::new();
        for (xa, shape, want, mlx) in &cases {
            let got = xa.gelu().unwrap();
            check(&got, shape, want, 1e-7, 1e-6, &format!("gelu at {level}"));
            let got = read(&got);
            assert_close(&got, mlx, 1e-6, 1e-5, &format!("gelu vs mlx at {level}"));
            all.extend(got);
        }
        let got = read(&special.gelu().unwrap());
        assert!(got[0].is_nan(), "{level}");
        assert_eq!(got[1], f32::INFINITY, "{level}");
        assert_eq!(got[2], 0.0, "{level}");
        assert!((got[3] - 0.5e-30).abs() < 1e-36, "{level}");
        assert!((got[4] + 0.5e-30).abs() < 1e-36, "{level}");
        assert!(got[5].is_nan(), "{level}");
        all
    });
}

#[test]
fn gelu_of_a_transposed_input() {
    let _g = lock();
    let x = rand_vec(14, 5 * 13, -3.0, 3.0);
    let (xt, shape) = permute(&x, &[5, 13], &[1, 0]);
    let want: Vec<f64> = xt.iter().map(|&v| gelu_naive(v)).collect();
    at_each_isa("gelu of a view", false, |level| {
        let got = arr(&x, &[5, 13]).transpose(&[]).unwrap().gelu().unwrap();
        check(
            &got,
            &shape,
            &want,
            1e-7,
            1e-6,
            &format!("gelu of a view at {level}"),
        );
        read(&got)
    });
}

fn sigmoid_naive(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn silu_and_glu_match_reference_and_mlx() {
    let _g = lock();
    let shapes = [vec![1002], vec![3, 2048], vec![2, 7, 34], vec![1, 2]];
    let cases: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let mut x = rand_vec(30 + i as u64, numel(shape), -30.0, 30.0);
            x[0] = 0.0;
            let xa = arr(&x, shape);
            let silu: Vec<f64> = x
                .iter()
                .map(|&v| f64::from(v) * sigmoid_naive(f64::from(v)))
                .collect();
            let n = *shape.last().unwrap() as usize / 2;
            let glu: Vec<f64> = x
                .chunks(2 * n)
                .flat_map(|row| {
                    (0..n).map(|j| f64::from(row[j]) * sigmoid_naive(f64::from(row[n + j])))
                })
                .collect();
            let mut glu_shape = shape.clone();
            *glu_shape.last_mut().unwrap() /= 2;
            let mlx_silu = to_f64(&with_mlx_ops(|| xa.silu().unwrap()));
            let mlx_glu = to_f64(&with_mlx_ops(|| xa.glu().unwrap()));
            (xa, shape.clone(), silu, mlx_silu, glu_shape, glu, mlx_glu)
        })
        .collect();
    at_each_isa("silu and glu", true, |level| {
        let mut all = Vec::new();
        for (xa, shape, silu, mlx_silu, glu_shape, glu, mlx_glu) in &cases {
            let got = xa.silu().unwrap();
            check(&got, shape, silu, 1e-7, 1e-6, &format!("silu at {level}"));
            let got = read(&got);
            assert_close(
                &got,
                mlx_silu,
                1e-6,
                1e-5,
                &format!("silu vs mlx at {level}"),
            );
            all.extend(got);
            let got = xa.glu().unwrap();
            check(&got, glu_shape, glu, 1e-7, 1e-6, &format!("glu at {level}"));
            let got = read(&got);
            assert_close(&got, mlx_glu, 1e-6, 1e-5, &format!("glu vs mlx at {level}"));
            all.extend(got);
        }
        all
    });
}

#[test]
fn glu_of_a_transposed_input_and_an_odd_axis() {
    let _g = lock();
    let x = rand_vec(40, 6 * 5, -3.0, 3.0);
    let (xt, _) = permute(&x, &[6, 5], &[1, 0]);
    let want: Vec<f64> = xt
        .chunks(6)
        .flat_map(|row| (0..3).map(|j| f64::from(row[j]) * sigmoid_naive(f64::from(row[3 + j]))))
        .collect();
    at_each_isa("glu of a view", false, |level| {
        let got = arr(&x, &[6, 5]).transpose(&[]).unwrap().glu().unwrap();
        check(
            &got,
            &[5, 3],
            &want,
            1e-7,
            1e-6,
            &format!("glu of a view at {level}"),
        );
        read(&got)
    });
    assert!(arr(&x, &[5, 6]).transpose(&[]).unwrap().glu().is_err());
}

/// A depthwise convolution of `x` `[b, h, w, c]` with `k` `[c, kh, kw]`
/// (stride and zero padding per axis), in f64.
fn depthwise_ref(
    x: &[f32],
    [b, h, w, c]: [usize; 4],
    k: &[f32],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> (Vec<f64>, [usize; 2]) {
    let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
    let mut out = Vec::with_capacity(b * oh * ow * c);
    for bi in 0..b {
        for y in 0..oh {
            for z in 0..ow {
                for ci in 0..c {
                    let mut acc = 0.0f64;
                    for i in 0..kh {
                        for j in 0..kw {
                            let (iy, iz) = (
                                (y * sh + i) as isize - ph as isize,
                                (z * sw + j) as isize - pw as isize,
                            );
                            if iy < 0 || iz < 0 || iy as usize >= h || iz as usize >= w {
                                continue;
                            }
                            let xi = ((bi * h + iy as usize) * w + iz as usize) * c + ci;
                            acc += f64::from(x[xi]) * f64::from(k[(ci * kh + i) * kw + j]);
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    (out, [oh, ow])
}

#[test]
fn depthwise_convolutions_match_reference_and_mlx() {
    let _g = lock();
    // (input [b, h, w, c], kernel, stride, padding, 1-D): odd channel counts
    // leave a tail after the vectors; padding wider than the kernel's reach.
    let cases = [
        ([2, 13, 1, 19], [9, 1], [1, 1], [4, 0], true),
        ([1, 40, 1, 64], [9, 1], [1, 1], [4, 0], true),
        ([2, 12, 1, 5], [3, 1], [2, 1], [1, 0], true),
        ([2, 11, 9, 19], [3, 3], [2, 2], [1, 1], false),
        ([1, 8, 6, 16], [3, 3], [1, 1], [0, 0], false),
        ([1, 5, 4, 3], [3, 2], [1, 2], [2, 1], false),
    ];
    let cases: Vec<_> = cases
        .into_iter()
        .enumerate()
        .map(|(n, (dims, kernel, stride, padding, one_d))| {
            let [b, h, w, c] = dims;
            let x = rand_vec(50 + n as u64, b * h * w * c, -2.0, 2.0);
            let k = rand_vec(60 + n as u64, c * kernel[0] * kernel[1], -1.0, 1.0);
            let (want, [oh, ow]) = depthwise_ref(&x, dims, &k, kernel, stride, padding);
            let i = |v: usize| v as i32;
            let run = move || {
                if one_d {
                    arr(&x, &[i(b), i(h), i(c)])
                        .conv1d(
                            &arr(&k, &[i(c), i(kernel[0]), 1]),
                            i(stride[0]),
                            i(padding[0]),
                            1,
                            i(c),
                        )
                        .unwrap()
                } else {
                    arr(&x, &[i(b), i(h), i(w), i(c)])
                        .conv2d(
                            &arr(&k, &[i(c), i(kernel[0]), i(kernel[1]), 1]),
                            [i(stride[0]), i(stride[1])],
                            [i(padding[0]), i(padding[1])],
                            [1, 1],
                            i(c),
                        )
                        .unwrap()
                }
            };
            let shape = if one_d {
                vec![i(b), i(oh), i(c)]
            } else {
                vec![i(b), i(oh), i(ow), i(c)]
            };
            let mlx = to_f64(&with_mlx_ops(&run));
            (run, shape, want, mlx)
        })
        .collect();
    at_each_isa("depthwise convolution", true, |level| {
        let mut all = Vec::new();
        for (n, (run, shape, want, mlx)) in cases.iter().enumerate() {
            let got = run();
            check(
                &got,
                shape,
                want,
                1e-5,
                1e-5,
                &format!("case {n} at {level}"),
            );
            let got = read(&got);
            assert_close(
                &got,
                mlx,
                1e-5,
                1e-5,
                &format!("case {n} vs mlx at {level}"),
            );
            all.extend(got);
        }
        all
    });
}

/// Transformer-XL attention in f64: `q_u`, `q_v`, `k` `[b, h, t, d]`, `v`
/// `[b, h, t, dv]`, `p` `[h, 2t - 1, d]` (offsets t-1 … 1-t).
#[allow(clippy::too_many_arguments)]
fn rel_pos_attention_ref(
    q_u: &[f32],
    q_v: &[f32],
    k: &[f32],
    v: &[f32],
    p: &[f32],
    [b, h, t, d, dv]: [usize; 5],
    scale: f64,
) -> Vec<f64> {
    let dot = |a: &[f32], c: &[f32]| -> f64 {
        a.iter()
            .zip(c)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    };
    let mut out = Vec::with_capacity(b * h * t * dv);
    for bh in 0..b * h {
        let row =
            |a: &'_ [f32], i: usize, w: usize| a[(bh * t + i) * w..(bh * t + i + 1) * w].to_vec();
        for i in 0..t {
            let scores: Vec<f64> = (0..t)
                .map(|j| {
                    let offset = t - 1 - i + j;
                    let pos = &p[((bh % h) * (2 * t - 1) + offset) * d..][..d];
                    scale * (dot(&row(q_u, i, d), &row(k, j, d)) + dot(&row(q_v, i, d), pos))
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for c in 0..dv {
                out.push((0..t).map(|j| e[j] / z * f64::from(row(v, j, dv)[c])).sum());
            }
        }
    }
    out
}

#[test]
fn rel_pos_attention_matches_reference_and_mlx() {
    let _g = lock();
    // [b, h, t, d, dv]: several heads and batches, one frame, a value width
    // other than the keys'.
    let cases: Vec<_> = [[2, 3, 9, 8, 8], [1, 2, 1, 4, 4], [1, 4, 33, 16, 12]]
        .into_iter()
        .enumerate()
        .map(|(n, dims)| {
            let [b, h, t, d, dv] = dims;
            let seed = 70 + 10 * n as u64;
            let q_u = rand_vec(seed, b * h * t * d, -1.0, 1.0);
            let q_v = rand_vec(seed + 1, b * h * t * d, -1.0, 1.0);
            let k = rand_vec(seed + 2, b * h * t * d, -1.0, 1.0);
            let v = rand_vec(seed + 3, b * h * t * dv, -1.0, 1.0);
            let p = rand_vec(seed + 4, h * (2 * t - 1) * d, -1.0, 1.0);
            let scale = 1.0 / (d as f32).sqrt();
            let want = rel_pos_attention_ref(&q_u, &q_v, &k, &v, &p, dims, f64::from(scale));
            let i = |x: usize| x as i32;
            let qs = [i(b), i(h), i(t), i(d)];
            let run = move || {
                kernels::rel_pos_attention(
                    &arr(&q_u, &qs),
                    &arr(&q_v, &qs),
                    &arr(&k, &qs),
                    &arr(&v, &[i(b), i(h), i(t), i(dv)]),
                    &arr(&p, &[1, i(h), i(2 * t - 1), i(d)]),
                    scale,
                )
                .unwrap()
            };
            let mlx = with_mlx_ops(&run);
            (run, vec![i(b), i(h), i(t), i(dv)], want, mlx)
        })
        .collect();
    for (n, (_, _, want, mlx)) in cases.iter().enumerate() {
        assert_close(mlx, want, 1e-6, 1e-5, &format!("case {n}: MLX's ops"));
    }
    at_each_isa("rel_pos_attention", false, |level| {
        let mut all = Vec::new();
        for (n, (run, shape, want, _)) in cases.iter().enumerate() {
            let got = run();
            check(
                &got,
                shape,
                want,
                1e-6,
                1e-5,
                &format!("case {n} at {level}"),
            );
            all.extend(read(&got));
        }
        all
    });
}

fn layer_norm_ref(x: &[f32], n: usize, w: Option<&[f32]>, b: Option<&[f32]>) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|row| {
            let r = to_f64(row);
            let mean = r.iter().sum::<f64>() / n as f64;
            let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            let inv = 1.0 / (var + 1e-5).sqrt();
            (0..n)
                .map(|i| {
                    let y = (r[i] - mean) * inv;
                    let y = w.map_or(y, |w| y * w[i] as f64);
                    b.map_or(y, |b| y + b[i] as f64)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layer_norm_matches_reference_and_mlx() {
    let _g = lock();
    let mut cases = Vec::new();
    for (seed, shape) in [
        (20u64, vec![3, 385]),
        (21, vec![1, 1500, 384]),
        (22, vec![7]),
    ] {
        let n = *shape.last().unwrap() as usize;
        // An offset that a one-pass variance would lose precision on.
        let x: Vec<f32> = rand_vec(seed, numel(&shape), -2.0, 2.0)
            .iter()
            .map(|v| v + 50.0)
            .collect();
        let w = rand_vec(seed + 100, n, 0.5, 1.5);
        let b = rand_vec(seed + 200, n, -1.0, 1.0);
        let (xa, wa, ba) = (arr(&x, &shape), arr(&w, &[n as i32]), arr(&b, &[n as i32]));
        for (wo, bo) in [(false, false), (true, false), (false, true), (true, true)] {
            let (wm, bm) = (wo.then_some(wa.clone()), bo.then_some(ba.clone()));
            let want = layer_norm_ref(
                &x,
                n,
                wo.then_some(w.as_slice()),
                bo.then_some(b.as_slice()),
            );
            let mlx =
                with_mlx_ops(|| fast::layer_norm(&xa, wm.as_ref(), bm.as_ref(), 1e-5).unwrap());
            cases.push((xa.clone(), wm, bm, shape.clone(), want, to_f64(&mlx)));
        }
    }
    at_each_isa("layer_norm", true, |level| {
        let mut all = Vec::new();
        for (xa, wm, bm, shape, want, mlx) in &cases {
            let got = fast::layer_norm(xa, wm.as_ref(), bm.as_ref(), 1e-5).unwrap();
            check(
                &got,
                shape,
                want,
                2e-5,
                1e-5,
                &format!("layer_norm at {level}"),
            );
            // MLX's op loses more to the +50 offset than ours (both are
            // checked against f64 above; MLX's differs by up to ~5e-5).
            let got = read(&got);
            assert_close(
                &got,
                mlx,
                1e-4,
                1e-5,
                &format!("layer_norm vs mlx at {level}"),
            );
            all.extend(got);
        }
        all
    });
}

/// `softmax(scale q kᵀ + causal) v` in f64; `[B, H, L, D]` q, `[B, Hk, S, D]`
/// k and `[B, Hk, S, Dv]` v, all row-major.
#[allow(clippy::too_many_arguments)]
fn attention_ref(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: [usize; 7],
    scale: f64,
    causal: bool,
) -> Vec<f64> {
    let [b_n, h_n, hk_n, l_n, s_n, d, dv] = dims;
    let mut out = vec![0.0; b_n * h_n * l_n * dv];
    for b in 0..b_n {
        for h in 0..h_n {
            let hk = h / (h_n / hk_n);
            for i in 0..l_n {
                let qi = &q[((b * h_n + h) * l_n + i) * d..][..d];
                let valid = if causal {
                    (i + s_n - l_n + 1).min(s_n)
                } else {
                    s_n
                };
                let scores: Vec<f64> = (0..valid)
                    .map(|j| {
                        let kj = &k[((b * hk_n + hk) * s_n + j) * d..][..d];
                        scale
                            * qi.iter()
                                .zip(kj)
                                .map(|(&x, &y)| x as f64 * y as f64)
                                .sum::<f64>()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let sum: f64 = e.iter().sum();
                let o = &mut out[((b * h_n + h) * l_n + i) * dv..][..dv];
                for (j, p) in e.iter().enumerate() {
                    let vj = &v[((b * hk_n + hk) * s_n + j) * dv..][..dv];
                    for (oc, &vc) in o.iter_mut().zip(vj) {
                        *oc += p / sum * vc as f64;
                    }
                }
            }
        }
    }
    out
}

/// One attention call: its operands, the f64 reference and, for f32 keys
/// and values, MLX's own op's result.
struct AttentionCase {
    q: Array,
    k: Array,
    v: Array,
    scale: f32,
    mask: AttentionMask<'static>,
    shape: [i32; 4],
    want: Vec<f64>,
    mlx: Option<Vec<f64>>,
    what: String,
}

impl AttentionCase {
    fn new(dims: [usize; 7], causal: bool, seed: u64, spread: f32) -> AttentionCase {
        AttentionCase::with_kv(dims, causal, seed, spread, Dtype::F32)
    }

    /// Keys and values stored as `kv` (f32 or f16; the reference takes the
    /// stored values exactly). MLX's own op is compared for f32 only.
    fn with_kv(dims: [usize; 7], causal: bool, seed: u64, spread: f32, kv: Dtype) -> AttentionCase {
        let [b, h, hk, l, s, d, dv] = dims;
        let q = rand_vec(seed, b * h * l * d, -spread, spread);
        let i = |x: usize| x as i32;
        let stored = |values: Vec<f32>, shape: &[i32]| {
            let a = arr(&values, shape).astype(kv).unwrap();
            let exact = if kv == Dtype::F16 {
                read_f16(&a)
            } else {
                values
            };
            (a, exact)
        };
        let (ka, k) = stored(
            rand_vec(seed + 1, b * hk * s * d, -spread, spread),
            &[i(b), i(hk), i(s), i(d)],
        );
        let (va, v) = stored(
            rand_vec(seed + 2, b * hk * s * dv, -1.0, 1.0),
            &[i(b), i(hk), i(s), i(dv)],
        );
        let scale = 1.0 / (d as f64).sqrt();
        let mask = if causal {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        };
        let mut case = AttentionCase {
            q: arr(&q, &[i(b), i(h), i(l), i(d)]),
            k: ka,
            v: va,
            scale: scale as f32,
            mask,
            shape: [i(b), i(h), i(l), i(dv)],
            want: attention_ref(&q, &k, &v, dims, scale, causal),
            mlx: None,
            what: format!("attention {dims:?} causal={causal} {kv:?} keys/values"),
        };
        if kv == Dtype::F32 {
            case.mlx = Some(to_f64(&with_mlx_ops(|| case.run())));
        }
        case
    }

    fn run(&self) -> Array {
        fast::scaled_dot_product_attention(&self.q, &self.k, &self.v, self.scale, self.mask)
            .unwrap()
    }

    /// The kernels' result, checked against the reference and MLX's op.
    fn check(&self, level: Isa) -> Vec<f32> {
        let got = self.run();
        let what = format!("{} at {level}", self.what);
        check(&got, &self.shape, &self.want, 2e-6, 1e-4, &what);
        let got = read(&got);
        if let Some(mlx) = &self.mlx {
            assert_close(&got, mlx, 2e-6, 1e-4, &format!("{what} vs mlx"));
        }
        got
    }
}

/// Every case at every level.
fn attention_cases(what: &str, cases: &[AttentionCase]) {
    at_each_isa(what, true, |level| {
        cases.iter().flat_map(|c| c.check(level)).collect()
    });
}

#[test]
fn attention_decoding_shapes() {
    let _g = lock();
    // [B, H, Hk, L, S, D, Dv]: one query, a few beams, odd sizes, GQA, Dv != D.
    let cases = [
        AttentionCase::new([1, 6, 6, 1, 1500, 64, 64], false, 30, 2.0),
        AttentionCase::new([5, 6, 6, 1, 37, 64, 64], false, 31, 2.0),
        AttentionCase::new([1, 6, 6, 5, 1500, 64, 64], false, 32, 2.0),
        AttentionCase::new([2, 3, 3, 1, 7, 5, 5], false, 33, 2.0),
        AttentionCase::new([1, 4, 2, 3, 9, 8, 8], false, 34, 2.0),
        AttentionCase::new([1, 2, 2, 2, 11, 6, 3], false, 35, 2.0),
        AttentionCase::new([1, 1, 1, 1, 1, 1, 1], false, 36, 2.0),
        // Causal with fewer queries than keys (a decoder step over its cache).
        AttentionCase::new([1, 6, 6, 4, 30, 64, 64], true, 37, 2.0),
        AttentionCase::new([3, 2, 2, 5, 5, 16, 16], true, 38, 2.0),
    ];
    attention_cases("decoding shapes", &cases);
}

#[test]
fn attention_over_f16_keys_and_values() {
    let _g = lock();
    // f32 queries against f16 keys and values (a quantized model's cross-
    // attention cache): the reference takes the f16 values exactly. Few
    // queries read them directly, many with 64-wide values as the fused
    // kernel packs them (AVX2, AVX-512), others through widened f32 copies.
    let cases: Vec<_> = [
        (120u64, [1usize, 6, 6, 1, 1500, 64, 64]),
        (121, [1, 6, 6, 5, 1500, 64, 64]),
        (122, [2, 4, 2, 3, 37, 12, 12]),
        (123, [1, 6, 6, 40, 300, 64, 64]),
        (124, [2, 4, 2, 21, 90, 64, 64]),
        (125, [1, 2, 2, 30, 50, 32, 32]),
    ]
    .into_iter()
    .map(|(seed, dims)| AttentionCase::with_kv(dims, false, seed, 2.0, Dtype::F16))
    .collect();
    attention_cases("f16 keys and values", &cases);
}

#[test]
fn attention_long_query_shapes() {
    let _g = lock();
    // Longer queries: 64-wide values (every Whisper head) take the fused
    // kernel on AVX2 and AVX-512 CPUs, the rest GEMM calls. Blocks of 16
    // queries that leave a partial block and partial row groups, key counts
    // past and short of a 64-key tile, shared key heads in a batch of two,
    // keys of another width, a causal prompt after cached keys (S > L),
    // peaked softmax rows (large logits).
    let cases = [
        AttentionCase::new([1, 6, 6, 150, 150, 64, 64], false, 40, 2.0),
        AttentionCase::new([1, 2, 2, 33, 47, 16, 16], false, 41, 2.0),
        AttentionCase::new([2, 4, 2, 40, 41, 24, 12], false, 42, 2.0),
        AttentionCase::new([1, 6, 6, 100, 100, 64, 64], true, 43, 2.0),
        AttentionCase::new([1, 3, 3, 17, 60, 32, 32], true, 44, 2.0),
        AttentionCase::new([1, 2, 2, 20, 50, 64, 64], false, 45, 6.0),
        AttentionCase::new([2, 4, 2, 37, 130, 64, 64], true, 46, 2.0),
        AttentionCase::new([1, 2, 1, 70, 70, 48, 64], false, 47, 2.0),
        AttentionCase::new([1, 3, 3, 18, 64, 64, 64], false, 48, 2.0),
        AttentionCase::new([1, 1, 1, 33, 300, 64, 64], true, 49, 6.0),
    ];
    attention_cases("long queries", &cases);
}

#[test]
fn attention_of_split_heads_views() {
    let _g = lock();
    // Heads split from [B, S, H * D] the way the models do it (transposed views).
    let (b, s, h, d) = (1, 45, 3, 8);
    let x = rand_vec(50, b * s * h * d, -1.0, 1.0);
    let y = rand_vec(51, b * s * h * d, -1.0, 1.0);
    let heads = |v: &[f32]| {
        arr(v, &[b as i32, s as i32, h as i32, d as i32])
            .transpose(&[0, 2, 1, 3])
            .unwrap()
    };
    let (qa, ka) = (heads(&x), heads(&y));
    let (qp, _) = permute(&x, &[1, 45, 3, 8], &[0, 2, 1, 3]);
    let (kp, _) = permute(&y, &[1, 45, 3, 8], &[0, 2, 1, 3]);
    let dims = [1, 3, 3, 45, 45, 8, 8];
    let want_none = attention_ref(&qp, &kp, &kp, dims, 0.3, false);
    let want_causal = attention_ref(&qp, &kp, &kp, dims, 0.3, true);
    // A key view whose last axis is strided.
    let kt = arr(&y, &[1, 3, 8, 45]).transpose(&[0, 1, 3, 2]).unwrap();
    let (ktp, _) = permute(&y, &[1, 3, 8, 45], &[0, 1, 3, 2]);
    let want_strided = attention_ref(&qp, &ktp, &ktp, dims, 0.3, false);
    let cases = [
        (&ka, AttentionMask::None, &want_none, "views"),
        (&ka, AttentionMask::Causal, &want_causal, "causal views"),
        (&kt, AttentionMask::None, &want_strided, "strided last axis"),
    ];
    at_each_isa("attention of views", true, |level| {
        let mut all = Vec::new();
        for (k, mask, want, what) in cases {
            let got = fast::scaled_dot_product_attention(&qa, k, k, 0.3, mask).unwrap();
            let what = format!("attention, {what} at {level}");
            check(&got, &[1, 3, 45, 8], want, 2e-6, 1e-4, &what);
            all.extend(read(&got));
        }
        all
    });
}

/// Held threads spin between jobs and a hot pool splits smaller jobs (from
/// 2e4 element operations instead of 2e5): the same values, bit for bit, in
/// and out of (nested) holds, and jobs still finish once the holds are gone.
#[test]
fn thread_holds_change_no_value() {
    let _g = lock();
    // softmax and GELU costs of 3.2e4 and 1.2e5: split only when hot.
    let x = arr(&rand_vec(70, 10 * 400, -4.0, 4.0), &[10, 400]);
    let q = arr(&rand_vec(71, 6 * 40 * 64, -2.0, 2.0), &[1, 6, 40, 64]);
    let k = arr(&rand_vec(72, 6 * 300 * 64, -2.0, 2.0), &[1, 6, 300, 64]);
    let work = || {
        let a = fast::scaled_dot_product_attention(&q, &k, &k, 0.125, AttentionMask::None);
        let mut out = read(&a.unwrap());
        out.extend(read(&x.softmax(&[-1], true).unwrap()));
        out.extend(read(&x.gelu().unwrap()));
        out
    };
    let alone = work();
    let held = {
        let _outer = kernels::ThreadHold::hold();
        let first = work();
        let _inner = kernels::ThreadHold::hold();
        assert_eq!(first, work(), "under nested holds");
        first
    };
    assert_eq!(alone, held, "under a hold");
    assert_eq!(alone, work(), "after the holds");
}

#[test]
fn kernels_inside_compiled_functions() {
    let _g = lock();
    let f = mlx::compile(
        |x: &[Array]| {
            let h = fast::layer_norm(&x[0], None, None, 1e-5)?.gelu()?;
            let q = h.reshape(&[1, 2, 6, 4])?;
            let a = fast::scaled_dot_product_attention(&q, &q, &q, 0.5, AttentionMask::Causal)?;
            Ok(vec![a.softmax(&[-1], true)?.mul_scalar(3.0)?])
        },
        false,
    )
    .unwrap();
    let x = arr(&rand_vec(60, 48, -2.0, 2.0), &[6, 8]);
    let eager = {
        let h = fast::layer_norm(&x, None, None, 1e-5)
            .unwrap()
            .gelu()
            .unwrap();
        let q = h.reshape(&[1, 2, 6, 4]).unwrap();
        let a = fast::scaled_dot_product_attention(&q, &q, &q, 0.5, AttentionMask::Causal).unwrap();
        read(&a.softmax(&[-1], true).unwrap().mul_scalar(3.0).unwrap())
    };
    for _ in 0..2 {
        let out = f.call(&[&x]).unwrap();
        assert_close(&read(&out[0]), &to_f64(&eager), 1e-6, 1e-6, "compiled");
    }
}

fn matmul_ref(x: &[f32], m: usize, k: usize, w_nk: &[f32], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for r in 0..m {
        for c in 0..n {
            out[r * n + c] = (0..k)
                .map(|i| x[r * k + i] as f64 * w_nk[c * k + i] as f64)
                .sum();
        }
    }
    out
}

/// A few rows times a matrix: the operands, the f64 references and MLX's own
/// op's results.
struct FewRows {
    x: Array,
    w_nk: Array,
    w_kn: Array,
    bias: Array,
    out_shape: Vec<i32>,
    want: Vec<f64>,
    want_addmm: Vec<f64>,
    mlx: Vec<f64>,
    mlx_addmm: Vec<f64>,
}

#[test]
fn matmul_with_few_rows_matches_reference_and_mlx() {
    let _g = lock();
    // [rows, K] x [K, N] for a transposed [N, K] weight (the decoder's
    // linear layers and the vocabulary projection), a row-major [K, N]
    // matrix, and a strided one; with and without a bias (addmm).
    let cases: Vec<_> = [
        (70u64, vec![1, 1], 384usize, 1536usize),
        (71, vec![5, 1], 384, 51864),
        (72, vec![2, 3], 37, 101),
        (73, vec![1, 1], 5, 3),
        (74, vec![8], 64, 64),
    ]
    .into_iter()
    .map(|(seed, lead, k, n)| {
        let m: usize = lead.iter().product::<i32>() as usize;
        let x = rand_vec(seed, m * k, -1.0, 1.0);
        let w = rand_vec(seed + 1, n * k, -0.1, 0.1);
        let bias = rand_vec(seed + 2, n, -1.0, 1.0);
        let mut shape = lead.clone();
        shape.push(k as i32);
        let xa = arr(&x, &shape);
        let wt = arr(&w, &[n as i32, k as i32]).transpose(&[]).unwrap();
        let ba = arr(&bias, &[n as i32]);
        let mut out_shape = lead.clone();
        out_shape.push(n as i32);
        let want = matmul_ref(&x, m, k, &w, n);
        // addmm: 0.5 x w + 2 bias.
        let want_addmm = want
            .iter()
            .enumerate()
            .map(|(i, v)| 0.5 * v + 2.0 * bias[i % n] as f64)
            .collect();
        let (w_kn, _) = permute(&w, &[n as i32, k as i32], &[1, 0]);
        FewRows {
            mlx: to_f64(&with_mlx_ops(|| xa.matmul(&wt).unwrap())),
            mlx_addmm: to_f64(&with_mlx_ops(|| ba.addmm(&xa, &wt, 0.5, 2.0).unwrap())),
            x: xa,
            w_nk: wt,
            w_kn: arr(&w_kn, &[k as i32, n as i32]),
            bias: ba,
            out_shape,
            want,
            want_addmm,
        }
    })
    .collect();
    // Neither axis contiguous: every other column of a wider matrix.
    let (k, n) = (9usize, 7usize);
    let x = rand_vec(80, 2 * k, -1.0, 1.0);
    let wide = rand_vec(81, k * 2 * n, -1.0, 1.0);
    let strided = arr(&wide, &[k as i32, 2 * n as i32])
        .slice(&[0, 0], &[k as i32, 2 * n as i32], &[1, 2])
        .unwrap()
        .transpose(&[])
        .unwrap()
        .transpose(&[])
        .unwrap();
    let w_nk: Vec<f32> = (0..n)
        .flat_map(|c| (0..k).map(move |r| (r, c)))
        .map(|(r, c)| wide[r * 2 * n + 2 * c])
        .collect();
    let want_strided = matmul_ref(&x, 2, k, &w_nk, n);
    let x_strided = arr(&x, &[2, k as i32]);
    at_each_isa("few-row matmul", true, |level| {
        let mut all = Vec::new();
        for c in &cases {
            let what = |form: &str| format!("matmul, {form} at {level}");
            let got = c.x.matmul(&c.w_nk).unwrap();
            check(
                &got,
                &c.out_shape,
                &c.want,
                1e-5,
                1e-5,
                &what("transposed weight"),
            );
            let got = read(&got);
            assert_close(&got, &c.mlx, 1e-5, 1e-5, &what("vs mlx"));
            all.extend(got);
            let got = c.x.matmul(&c.w_kn).unwrap();
            check(&got, &c.out_shape, &c.want, 1e-5, 1e-5, &what("[K, N]"));
            all.extend(read(&got));
            let got = c.bias.addmm(&c.x, &c.w_nk, 0.5, 2.0).unwrap();
            check(
                &got,
                &c.out_shape,
                &c.want_addmm,
                1e-5,
                1e-5,
                &what("addmm"),
            );
            let got = read(&got);
            assert_close(&got, &c.mlx_addmm, 1e-5, 1e-5, &what("addmm vs mlx"));
            all.extend(got);
        }
        let got = x_strided.matmul(&strided).unwrap();
        check(
            &got,
            &[2, n as i32],
            &want_strided,
            1e-5,
            1e-5,
            &format!("matmul, strided at {level}"),
        );
        all.extend(read(&got));
        all
    });
}

#[test]
fn matmul_against_f16_weights_equals_the_f32_kernel_on_the_widened_weights() {
    let _g = lock();
    // f16 weights (as a checkpoint published in f16 stores them) are widened
    // exactly, and the sums run in the same order as for f32 weights: for
    // widths in whole vectors (every Whisper size) the results are bit for
    // bit those of the f32 kernel at the same level; a scalar tail may round
    // its last products differently (fused or not).
    let cases: Vec<_> = [
        (90u64, 1usize, 384usize, 51864usize),
        (91, 5, 384, 1537),
        (92, 3, 37, 13),
        (93, 8, 1536, 384),
    ]
    .into_iter()
    .map(|(seed, rows, k, n)| {
        let x = arr(
            &rand_vec(seed, rows * k, -1.0, 1.0),
            &[rows as i32, 1, k as i32],
        );
        let half = arr(&rand_vec(seed + 1, n * k, -0.5, 0.5), &[n as i32, k as i32])
            .astype(Dtype::F16)
            .unwrap();
        let widened = arr(
            &read(&half.astype(Dtype::F32).unwrap()),
            &[n as i32, k as i32],
        );
        // Not the transposed layout: widened to f32 first, same values.
        let kn = half.transpose(&[]).unwrap().astype(Dtype::F32).unwrap();
        let row_major = arr(&read(&kn), &[k as i32, n as i32])
            .astype(Dtype::F16)
            .unwrap();
        (
            x,
            half,
            widened,
            row_major,
            format!("{rows}x{k} . {n}x{k}"),
            k,
        )
    })
    .collect();
    at_each_isa("f16 weights", true, |level| {
        let mut all = Vec::new();
        for (x, half, widened, row_major, what, k) in &cases {
            let what = format!("{what} at {level}");
            let got = read(&x.matmul(&half.transpose(&[]).unwrap()).unwrap());
            let want = read(&x.matmul(&widened.transpose(&[]).unwrap()).unwrap());
            if k % 8 == 0 {
                assert_eq!(got, want, "{what}");
            } else {
                assert_close(&got, &to_f64(&want), 1e-6, 1e-6, &format!("{what}, tail"));
            }
            let got_kn = read(&x.matmul(row_major).unwrap());
            assert_close(
                &got_kn,
                &to_f64(&want),
                1e-5,
                1e-5,
                &format!("{what}, [K, N]"),
            );
            all.extend(got);
        }
        all
    });
}

/// A quantized `[n, k]` matrix unpacked from MLX's words: the integer values
/// `[n, k]` and the per-group scales and biases `[n, k / group]`.
struct Unpacked {
    values: Vec<u32>,
    scales: Vec<f64>,
    biases: Vec<f64>,
}

fn unpack_ref(q: &QuantizedMatrix, n: usize, k: usize) -> Unpacked {
    let words = q.weight.to_vec::<u32>().unwrap();
    let table = |a: &Array| to_f64(&read(&a.astype(Dtype::F32).unwrap()));
    let bits = q.bits as usize;
    let per_row = k * bits / 32;
    let values = (0..n * k)
        .map(|i| {
            let (r, bit) = (i / k, (i % k) * bits);
            (words[r * per_row + bit / 32] >> (bit % 32)) & ((1 << bits) - 1)
        })
        .collect();
    Unpacked {
        values,
        scales: table(&q.scales),
        biases: table(&q.biases),
    }
}

/// `w` `[n, k]` as MLX's affine quantization stores it: `scale * q + bias`
/// per group, in f64.
fn dequantize_ref(q: &QuantizedMatrix, n: usize, k: usize) -> Vec<f64> {
    let u = unpack_ref(q, n, k);
    let group = q.group_size as usize;
    (0..n * k)
        .map(|i| {
            let g = (i / k) * (k / group) + (i % k) / group;
            u.scales[g] * u.values[i] as f64 + u.biases[g]
        })
        .collect()
}

#[test]
fn quantized_matmul_matches_unpacked_reference_and_mlx() {
    let _g = lock();
    // Decoding shapes (a few rows against a linear layer or the vocabulary),
    // a prompt and an encoder-like batch (many rows: dequantized GEMM),
    // every supported width and group size, f32 and f16 scale tables.
    let cases: Vec<_> = [
        (100u64, 1usize, 384usize, 1536usize, 8, 64, Dtype::F32),
        (101, 5, 384, 5187, 8, 64, Dtype::F32),
        (102, 1, 1536, 384, 4, 64, Dtype::F32),
        (103, 3, 128, 17, 4, 32, Dtype::F16),
        (104, 8, 256, 33, 8, 128, Dtype::F16),
        (105, 1, 64, 1, 8, 32, Dtype::F32),
        (106, 40, 384, 96, 8, 64, Dtype::F32),
        (107, 9, 128, 20, 4, 128, Dtype::F16),
    ]
    .into_iter()
    .map(|(seed, rows, k, n, bits, group, table)| {
        let what = format!("{rows}x{k} . {n}x{k}, q{bits} g{group} {table:?}");
        let w = arr(&rand_vec(seed, n * k, -0.2, 0.2), &[n as i32, k as i32])
            .astype(table)
            .unwrap();
        let q = QuantizedMatrix::quantize(&w, group, bits).unwrap();
        let x_values = rand_vec(seed + 1, rows * k, -1.0, 1.0);
        let x = arr(&x_values, &[rows as i32, 1, k as i32]);
        let w_ref = dequantize_ref(&q, n, k);
        let w_ref32: Vec<f32> = w_ref.iter().map(|&v| v as f32).collect();
        let want = matmul_ref(&x_values, rows, k, &w_ref32, n);
        // MLX's own op dequantizes f16 tables to f16 weights when it takes
        // the dequantize + GEMM route (2^-11 relative); ours stay f32.
        let tol = if table == Dtype::F16 && rows > 8 {
            2e-3
        } else {
            1e-4
        };
        let mlx = to_f64(&with_mlx_ops(|| q.matmul(&x, true).unwrap()));
        (q, x, [rows as i32, 1, n as i32], want, mlx, tol, what)
    })
    .collect();
    at_each_isa("quantized matmul", true, |level| {
        let mut all = Vec::new();
        for (q, x, shape, want, mlx, tol, what) in &cases {
            let what = format!("{what} at {level}");
            let got = q.matmul(x, true).unwrap();
            check(&got, shape, want, 1e-4, 1e-4, &what);
            let got = read(&got);
            assert_close(&got, mlx, *tol, *tol, &format!("{what} vs mlx"));
            all.extend(got);
        }
        all
    });
}

#[test]
fn f16_if_exact_narrows_only_tables_of_f16_values() {
    let _g = lock();
    // f16 values stored as f32 (a converted f16 checkpoint): narrowed, same values.
    let values = rand_vec(95, 3 * 1000 + 5, -4.0, 4.0);
    let halves = arr(&values, &[3005])
        .astype(Dtype::F16)
        .unwrap()
        .astype(Dtype::F32)
        .unwrap();
    let exact = read(&halves);
    let exact_table = arr(&exact, &[3005]);
    at_each_isa("f16_if_exact", false, |level| {
        let narrowed = kernels::f16_if_exact(&exact_table).unwrap();
        assert_eq!(narrowed.dtype(), Dtype::F16, "{level}");
        let got = read(&narrowed.astype(Dtype::F32).unwrap());
        assert_eq!(got, exact, "{level}");
        // One value that f16 cannot hold (the last, past the vector lanes,
        // and one inside them): the table stays f32, untouched.
        for at in [3004, 17] {
            let mut off = exact.clone();
            off[at] += 1e-4;
            let table = arr(&off, &[3005]);
            let kept = kernels::f16_if_exact(&table).unwrap();
            assert_eq!(
                (kept.dtype(), read(&kept)),
                (Dtype::F32, off),
                "value {at} at {level}"
            );
        }
        got
    });
}

/// `x wᵀ (+ b)`, then GELU, then `+ residual`, in f64.
fn linear_ref(
    x: &[f32],
    rows: usize,
    w_nk: &[f32],
    (k, n): (usize, usize),
    epilogue: (Option<&[f32]>, bool, Option<&[f32]>),
) -> Vec<f64> {
    let (bias, gelu, residual) = epilogue;
    let mut y = matmul_ref(x, rows, k, w_nk, n);
    for (i, v) in y.iter_mut().enumerate() {
        if let Some(b) = bias {
            *v += b[i % n] as f64;
        }
        if gelu {
            *v = 0.5 * *v * (1.0 + erf(*v / std::f64::consts::SQRT_2));
        }
        if let Some(r) = residual {
            *v += r[i] as f64;
        }
    }
    y
}

#[test]
fn linear_epilogue_equals_the_separate_ops() {
    let _g = lock();
    at_each_isa("linear epilogue", true, |level| {
        let mut all = Vec::new();
        // Decoding rows (the fused kernel), a prompt (GEMM, then the epilogue as
        // ops); dense f32, f16 and q8/q4 weights; every combination of bias,
        // GELU and residual the decoder uses, and none.
        let epilogues = [
            (true, false, false),
            (true, true, false),
            (true, false, true),
            (false, false, true),
            (true, true, true),
            (false, false, false),
        ];
        for (seed, rows, k, n) in [
            (110u64, 1usize, 384usize, 1536usize),
            (111, 5, 128, 70),
            (112, 12, 64, 33),
        ] {
            let w_values = rand_vec(seed, n * k, -0.2, 0.2);
            let w = arr(&w_values, &[n as i32, k as i32]);
            let x_values = rand_vec(seed + 1, rows * k, -1.0, 1.0);
            let x = arr(&x_values, &[rows as i32, 1, k as i32]);
            let b_values = rand_vec(seed + 2, n, -0.5, 0.5);
            let b = arr(&b_values, &[n as i32]);
            let r_values = rand_vec(seed + 3, rows * n, -1.0, 1.0);
            let r = arr(&r_values, &[rows as i32, 1, n as i32]);
            let q8 = QuantizedMatrix::quantize(&w, 64, 8).unwrap();
            let q4 = QuantizedMatrix::quantize(&w, 32, 4).unwrap();
            let dense_f16 = w.astype(Dtype::F16).unwrap();
            for (bias, gelu, residual) in epilogues {
                let epilogue = kernels::LinearEpilogue {
                    bias: bias.then_some(&b),
                    gelu,
                    residual: residual.then_some(&r),
                };
                // The same computation as separate ops.
                let separate = |product: Array| {
                    let mut y = product;
                    if bias {
                        y = y.add(&b).unwrap();
                    }
                    if gelu {
                        y = y.gelu().unwrap();
                    }
                    if residual {
                        y = r.add(&y).unwrap();
                    }
                    y
                };
                let what = format!(
                    "{rows}x{k} . {n}x{k}, bias {bias} gelu {gelu} residual {residual} at {level}"
                );
                let shape = [rows as i32, 1, n as i32];
                let refs = (
                    bias.then_some(&b_values[..]),
                    gelu,
                    residual.then_some(&r_values[..]),
                );
                // Dense: the bias goes into the product as addmm's does.
                for weight in [&w, &dense_f16] {
                    let what = format!("{what} {:?}", weight.dtype());
                    let got = kernels::linear(&x, weight, epilogue).unwrap();
                    let wt = weight.transpose(&[]).unwrap();
                    let product = if bias {
                        b.addmm(&x, &wt, 1.0, 1.0).unwrap()
                    } else {
                        x.matmul(&wt).unwrap()
                    };
                    let mut want_ops = product;
                    if gelu {
                        want_ops = want_ops.gelu().unwrap();
                    }
                    if residual {
                        want_ops = r.add(&want_ops).unwrap();
                    }
                    assert_eq!(read(&got), read(&want_ops), "{what}: fused vs ops");
                    let w_read = read(&weight.astype(Dtype::F32).unwrap());
                    let want = linear_ref(&x_values, rows, &w_read, (k, n), refs);
                    check(&got, &shape, &want, 1e-4, 1e-4, &what);
                    all.extend(read(&got));
                    let mlx = with_mlx_ops(|| kernels::linear(&x, weight, epilogue).unwrap());
                    assert_close(
                        &read(&got),
                        &to_f64(&mlx),
                        1e-4,
                        1e-4,
                        &format!("{what} vs mlx"),
                    );
                }
                for q in [&q8, &q4] {
                    let what = format!("{what} q{}", q.bits);
                    let got = q.linear(&x, epilogue).unwrap();
                    let want_ops = separate(q.matmul(&x, true).unwrap());
                    assert_eq!(read(&got), read(&want_ops), "{what}: fused vs ops");
                    let w_ref: Vec<f32> =
                        dequantize_ref(q, n, k).iter().map(|&v| v as f32).collect();
                    let want = linear_ref(&x_values, rows, &w_ref, (k, n), refs);
                    check(&got, &shape, &want, 1e-4, 1e-4, &what);
                    all.extend(read(&got));
                }
            }
        }
        all
    });
    // A residual that does not match the output's shape is broadcast, as the
    // separate add would.
    let w = arr(&rand_vec(113, 8 * 16, -1.0, 1.0), &[8, 16]);
    let x = arr(&rand_vec(114, 2 * 16, -1.0, 1.0), &[2, 16]);
    let r = arr(&rand_vec(115, 8, -1.0, 1.0), &[8]);
    let epilogue = kernels::LinearEpilogue {
        residual: Some(&r),
        ..Default::default()
    };
    let got = kernels::linear(&x, &w, epilogue).unwrap();
    let want = r
        .add(&x.matmul(&w.transpose(&[]).unwrap()).unwrap())
        .unwrap();
    assert_eq!(read(&got), read(&want));
}

/// The largest magnitude of each `group`-wide span of `row`.
fn group_maxima(row: &[f32], group: usize) -> Vec<f32> {
    row.chunks(group)
        .map(|g| g.iter().fold(0.0f32, |m, v| m.max(v.abs())))
        .collect()
}

/// `x` [rows, k] times a quantized matrix's transpose as the int8 kernel
/// defines it, in f64: each group of a row (the matrix's groups) rounded to
/// int8 with its largest magnitude at 127 (f32 arithmetic, ties to even as
/// the CPU converts), then the exact product of the rounded values with the
/// dequantized matrix: integer dot products per group times the group's
/// scale and x's, plus the group's bias against the sum of the rounded values.
fn int8_linear_ref(
    x: &[f32],
    rows: usize,
    q: &QuantizedMatrix,
    (k, n): (usize, usize),
) -> Vec<f64> {
    let u = unpack_ref(q, n, k);
    let group = q.group_size as usize;
    let mut y = vec![0.0; rows * n];
    for r in 0..rows {
        let row = &x[r * k..(r + 1) * k];
        let maxima = group_maxima(row, group);
        let xq: Vec<i64> = row
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let m = maxima[i / group];
                let inv = if m > 0.0 { 127.0 / m } else { 0.0 };
                (v * inv).round_ties_even() as i64
            })
            .collect();
        for c in 0..n {
            let mut total = 0.0;
            for (g, &m) in maxima.iter().enumerate() {
                let a = if m > 0.0 { m / 127.0 } else { 0.0 };
                let span = g * group..(g + 1) * group;
                let dot: i64 = span
                    .clone()
                    .map(|i| xq[i] * u.values[c * k + i] as i64)
                    .sum();
                let sum: i64 = xq[span].iter().sum();
                let t = c * (k / group) + g;
                total += a as f64 * (u.scales[t] * dot as f64 + u.biases[t] * sum as f64);
            }
            y[r * n + c] = total;
        }
    }
    y
}

/// The lowest level with an int8 product (AVX2's vpmaddwd).
const LOWEST_INT8_LEVEL: Isa = Isa::Avx2;

/// Whether two outputs hold the same values: equal bits, or NaN at both.
fn same_values(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Checks that every level with an int8 product gave the same values as
/// the first one: the int32 sums are exact and every path folds them with
/// the same f32 operations.
struct SameAtEveryLevel {
    first: Option<(Isa, Vec<Vec<f32>>)>,
}

impl SameAtEveryLevel {
    fn new() -> SameAtEveryLevel {
        SameAtEveryLevel { first: None }
    }

    fn check(&mut self, level: Isa, outputs: Vec<Vec<f32>>) {
        match &self.first {
            None => self.first = Some((level, outputs)),
            Some((first, want)) => {
                assert_eq!(want.len(), outputs.len());
                for (i, (w, got)) in want.iter().zip(&outputs).enumerate() {
                    assert!(
                        same_values(w, got),
                        "output {i}: {level} differs from {first}"
                    );
                }
            }
        }
    }
}

#[test]
fn int8_activations_match_their_definition_and_bound_the_f32_product() {
    let _g = lock();
    let flagged = |q: &QuantizedMatrix| QuantizedMatrix {
        int8_activations: true,
        ..q.clone()
    };
    let mut same = SameAtEveryLevel::new();
    at_each_isa("int8 products", false, |level| {
        let available = kernels::int8_products_available();
        assert_eq!(available, level >= LOWEST_INT8_LEVEL, "{level}");
        // The best int8 instruction set the CPU has up to the cap.
        let sums_with = [Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx2]
            .into_iter()
            .find(|&l| l <= level && l.supported());
        assert_eq!(kernels::int8_products_isa(), sums_with, "{level}");
        if !available {
            // Documented fallback: the f32 product, exactly.
            let w = arr(&rand_vec(120, 40 * 128, -0.2, 0.2), &[40, 128]);
            let q = QuantizedMatrix::quantize(&w, 64, 8).unwrap();
            let x = arr(&rand_vec(121, 30 * 128, -1.0, 1.0), &[30, 128]);
            let plain = q.linear(&x, kernels::LinearEpilogue::default()).unwrap();
            let int8 = flagged(&q)
                .linear(&x, kernels::LinearEpilogue::default())
                .unwrap();
            assert_eq!(read(&int8), read(&plain), "{level}");
            return read(&int8);
        }
        let mut outputs = Vec::new();
        // Encoder-like and prompt-like shapes, row counts that leave partial
        // tiles, column counts that leave partial panels and tile blocks,
        // group sizes 32-128, f32 and f16 tables.
        for (seed, rows, k, n, group, table) in [
            (122u64, 100usize, 384usize, 384usize, 64, Dtype::F32),
            (123, 13, 1536, 70, 64, Dtype::F32),
            (124, 9, 128, 17, 32, Dtype::F16),
            (125, 61, 256, 33, 128, Dtype::F16),
            (126, 300, 64, 1, 64, Dtype::F32),
            (129, 11, 64, 45, 32, Dtype::F32),
        ] {
            let what = format!("{level}: {rows}x{k} . {n}x{k} g{group} {table:?}");
            let w = arr(&rand_vec(seed, n * k, -0.2, 0.2), &[n as i32, k as i32])
                .astype(table)
                .unwrap();
            let q = QuantizedMatrix::quantize(&w, group, 8).unwrap();
            let mut x_values = rand_vec(seed + 1, rows * k, -1.0, 1.0);
            // A row of zeros, a row with one large value, a row of tiny values.
            x_values[..k].fill(0.0);
            x_values[k + 5] = 40.0;
            for v in &mut x_values[2 * k..3 * k] {
                *v *= 1e-6;
            }
            let x = arr(&x_values, &[rows as i32, k as i32]);
            let got = flagged(&q)
                .linear(&x, kernels::LinearEpilogue::default())
                .unwrap();
            let want = int8_linear_ref(&x_values, rows, &q, (k, n));
            check(&got, &[rows as i32, n as i32], &want, 1e-5, 1e-5, &what);
            // Against the f32 product: each element of x moves by at most half a
            // step (its group's largest magnitude / 254), so y by at most that
            // times the sum of |w| over the group, summed over the groups. With
            // one scale per row instead, the row holding 40.0 would break this.
            let w_ref = dequantize_ref(&q, n, k);
            let w_ref32: Vec<f32> = w_ref.iter().map(|&v| v as f32).collect();
            let exact = matmul_ref(&x_values, rows, k, &w_ref32, n);
            let got = read(&got);
            let mut largest_share = 0.0f64;
            for r in 0..rows {
                let maxima = group_maxima(&x_values[r * k..(r + 1) * k], group as usize);
                for c in 0..n {
                    let bound: f64 = w_ref[c * k..(c + 1) * k]
                        .chunks(group as usize)
                        .zip(&maxima)
                        .map(|(wg, &m)| m as f64 / 254.0 * wg.iter().map(|v| v.abs()).sum::<f64>())
                        .sum();
                    let err = (got[r * n + c] as f64 - exact[r * n + c]).abs();
                    assert!(
                        err <= bound + 1e-5,
                        "{what}: row {r} col {c}: {err} > {bound}"
                    );
                    if bound > 0.0 {
                        largest_share = largest_share.max(err / bound);
                    }
                }
            }
            // The errors are real rounding, not zero: the kernel did round x.
            assert!(largest_share > 0.01, "{what}: {largest_share}");
            assert_eq!(&got[..n], &vec![0.0; n][..], "{what}: zero row");
            outputs.push(got);
        }
        // A NaN or an infinity makes its row NaN (the f32 product would be NaN
        // or infinite there: the integer sums cannot carry either) and leaves
        // the other rows as they were.
        let (rows, k, n) = (12usize, 128usize, 20usize);
        let w = arr(&rand_vec(127, n * k, -0.2, 0.2), &[n as i32, k as i32]);
        let q = flagged(&QuantizedMatrix::quantize(&w, 64, 8).unwrap());
        let product = |x: &[f32]| {
            read(
                &q.linear(&arr(x, &[rows as i32, k as i32]), Default::default())
                    .unwrap(),
            )
        };
        let mut x_values = rand_vec(128, rows * k, -1.0, 1.0);
        let clean = product(&x_values);
        x_values[3 * k + 70] = f32::NAN;
        x_values[5 * k + 1] = f32::INFINITY;
        let got = product(&x_values);
        for r in 0..rows {
            let row = &got[r * n..(r + 1) * n];
            if r == 3 || r == 5 {
                assert!(row.iter().all(|v| v.is_nan()), "{level}: row {r}: {row:?}");
            } else {
                assert_eq!(row, &clean[r * n..(r + 1) * n], "{level}: row {r}");
            }
        }
        outputs.push(got);
        same.check(level, outputs.clone());
        outputs.concat()
    });
}

#[test]
fn int8_activations_fuse_the_epilogue_and_fall_back_where_they_cannot_apply() {
    let _g = lock();
    let (rows, k, n) = (40usize, 128usize, 48usize);
    let w = arr(&rand_vec(130, n * k, -0.2, 0.2), &[n as i32, k as i32]);
    let x_values = rand_vec(131, rows * k, -1.0, 1.0);
    let x = arr(&x_values, &[rows as i32, k as i32]);
    let b = arr(&rand_vec(132, n, -0.5, 0.5), &[n as i32]);
    let r = arr(
        &rand_vec(133, rows * n, -1.0, 1.0),
        &[rows as i32, n as i32],
    );
    let q8 = QuantizedMatrix {
        int8_activations: true,
        ..QuantizedMatrix::quantize(&w, 64, 8).unwrap()
    };
    let plain = |q: &QuantizedMatrix, x: &Array| {
        QuantizedMatrix {
            int8_activations: false,
            ..q.clone()
        }
        .linear(x, kernels::LinearEpilogue::default())
        .unwrap()
    };
    let q4 = QuantizedMatrix {
        int8_activations: true,
        ..QuantizedMatrix::quantize(&w, 64, 4).unwrap()
    };
    let mut same = SameAtEveryLevel::new();
    at_each_isa("int8 epilogue and fallbacks", false, |level| {
        let int8 = level >= LOWEST_INT8_LEVEL;
        // Bias, GELU, residual inside the kernel: the same values as the ops
        // applied to its plain product.
        let product = q8.linear(&x, kernels::LinearEpilogue::default()).unwrap();
        let epilogue = kernels::LinearEpilogue {
            bias: Some(&b),
            gelu: true,
            residual: Some(&r),
        };
        let fused = q8.linear(&x, epilogue).unwrap();
        let ops = r.add(&product.add(&b).unwrap().gelu().unwrap()).unwrap();
        assert_eq!(read(&fused), read(&ops), "{level}");
        // Few rows (decoding): the f32 small-matmul kernel, exactly.
        let few = arr(&x_values[..5 * k], &[5, k as i32]);
        let got = q8.linear(&few, kernels::LinearEpilogue::default()).unwrap();
        assert_eq!(read(&got), read(&plain(&q8, &few)), "{level}");
        // 4-bit matrices: the f32 product, exactly.
        let got = q4.linear(&x, kernels::LinearEpilogue::default()).unwrap();
        assert_eq!(read(&got), read(&plain(&q4, &x)), "{level}");
        // What the decoder's thread hold goes by: the rounded int8 product ran
        // exactly where the matrix says it multiplies on the kernel pool, at
        // the levels with an int8 product.
        let rounded = read(&product) != read(&plain(&q8, &x));
        assert_eq!(q8.multiplies_on_kernel_pool(), rounded, "{level}");
        assert_eq!(rounded, int8, "{level}");
        assert_eq!(kernels::int8_products_available(), int8, "{level}");
        assert!(!q4.multiplies_on_kernel_pool());
        let f32_activations = QuantizedMatrix {
            int8_activations: false,
            ..q8.clone()
        };
        assert!(!f32_activations.multiplies_on_kernel_pool());
        // Kernels off: MLX's ops, the f32 product.
        let off = with_mlx_ops(|| q8.linear(&x, kernels::LinearEpilogue::default()).unwrap());
        let off_plain = with_mlx_ops(|| plain(&q8, &x));
        assert_eq!(off, off_plain, "{level}");
        // A NaN in one row makes that row NaN and leaves the others alone.
        let mut poisoned = x_values.clone();
        poisoned[3 * k + 7] = f32::NAN;
        let got = read(
            &q8.linear(
                &arr(&poisoned, &[rows as i32, k as i32]),
                Default::default(),
            )
            .unwrap(),
        );
        let clean = read(&product);
        for (i, (g, c)) in got.iter().zip(&clean).enumerate() {
            if i / n == 3 {
                assert!(g.is_nan(), "{level}: row 3 col {}: {g}", i % n);
            } else if int8 {
                assert_eq!(g, c, "{level}: element {i}");
            }
        }
        if int8 {
            same.check(level, vec![read(&fused), got.clone()]);
        }
        got
    });
}

#[test]
fn int8_products_built_at_one_level_and_evaluated_below_every_int8_level_are_errors() {
    let _g = lock();
    if !LOWEST_INT8_LEVEL.supported() {
        return;
    }
    let (rows, k, n) = (16usize, 64usize, 8usize);
    let w = arr(&rand_vec(134, n * k, -0.2, 0.2), &[n as i32, k as i32]);
    let q8 = QuantizedMatrix {
        int8_activations: true,
        ..QuantizedMatrix::quantize(&w, 64, 8).unwrap()
    };
    let x = arr(
        &rand_vec(135, rows * k, -1.0, 1.0),
        &[rows as i32, k as i32],
    );
    let lazy = {
        let _cap = IsaCap::set(LOWEST_INT8_LEVEL);
        q8.linear(&x, Default::default()).unwrap()
    };
    let result = {
        let _cap = IsaCap::set(Isa::Baseline);
        lazy.eval()
    };
    let err = result.expect_err("an int8 product evaluated at baseline");
    assert!(err.to_string().contains("below avx2"), "{err}");
}

/// Row `rows[r]`'s first `filled` positions of a `[B, H, C, D]` array, for
/// every r, read by index: what `select_rows` must copy.
fn selected_ref(x: &[f32], shape: [usize; 4], rows: &[i32], filled: usize) -> Vec<f32> {
    let [_, h, c, d] = shape;
    let mut out = Vec::new();
    for &r in rows {
        for head in 0..h {
            let at = (r as usize * h + head) * c * d;
            out.extend_from_slice(&x[at..at + filled * d]);
        }
    }
    out
}

#[test]
fn select_rows_copies_the_filled_positions_of_each_picked_row() {
    let _g = lock();
    let shape = [3usize, 2, 8, 4];
    let x = rand_vec(300, shape.iter().product(), -1.0, 1.0);
    let dims: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
    for dtype in [Dtype::F32, Dtype::F16] {
        let a = arr(&x, &dims).astype(dtype).unwrap();
        // What the array holds, as f32 (f16 rounding happens before).
        let held = read(&a.astype(Dtype::F32).unwrap());
        // Repeated, reordered and dropped rows; none, some and all positions.
        for (rows, filled) in [(vec![1, 0, 1], 5), (vec![2], 8), (vec![0, 0, 0, 2], 0)] {
            for kernels in [true, false] {
                let previous = kernels::set_custom_kernels(kernels);
                let got = kernels::select_rows(&a, &rows, filled as i32).unwrap();
                let got_shape = got.shape();
                let got = read(&got.astype(Dtype::F32).unwrap());
                kernels::set_custom_kernels(previous);
                let what = format!("{dtype:?} rows {rows:?} filled {filled} kernels {kernels}");
                assert_eq!(got_shape, vec![rows.len() as i32, 2, 8, 4], "{what}");
                let want = selected_ref(&held, shape, &rows, filled);
                let got_filled = selected_ref(
                    &got,
                    [rows.len(), 2, 8, 4],
                    &(0..rows.len() as i32).collect::<Vec<_>>(),
                    filled,
                );
                assert_eq!(got_filled, want, "{what}");
            }
        }
    }
    let a = arr(&x, &dims);
    for bad in [3, -1] {
        let err = kernels::select_rows(&a, &[0, bad], 2).unwrap_err();
        assert!(err.to_string().contains(&format!("no row {bad}")), "{err}");
    }
}
