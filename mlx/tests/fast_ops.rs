//! `mlx::fast`: layer_norm, rms_norm, rope and scaled_dot_product_attention
//! against naive Rust implementations.

mod common;

use common::*;
use mlx::fast::{self, AttentionMask};
use mlx::{Array, Dtype};

fn layer_norm_naive(
    x: &[f32],
    d: usize,
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    eps: f64,
) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let r = to_f64(row);
            let mean = r.iter().sum::<f64>() / d as f64;
            let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + eps).sqrt();
            (0..d)
                .map(|i| {
                    let mut y = (r[i] - mean) * inv;
                    if let Some(w) = w {
                        y *= w[i] as f64;
                    }
                    if let Some(b) = b {
                        y += b[i] as f64;
                    }
                    y
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layer_norm_with_and_without_affine() {
    let (rows, d) = (6, 16);
    let x: Vec<f32> = rand_vec(1, rows * d, -2.0, 3.0);
    let w = rand_vec(2, d, 0.5, 1.5);
    let b = data(3, d);
    let xa = arr(&x, &[2, 3, 16]);
    let (wa, ba) = (arr(&w, &[16]), arr(&b, &[16]));
    let eps = 1e-5;
    type Case<'a> = (
        Option<&'a [f32]>,
        Option<&'a [f32]>,
        Option<&'a Array>,
        Option<&'a Array>,
    );
    let cases: [Case; 4] = [
        (None, None, None, None),
        (Some(&w), None, Some(&wa), None),
        (None, Some(&b), None, Some(&ba)),
        (Some(&w), Some(&b), Some(&wa), Some(&ba)),
    ];
    for (wn, bn, wm, bm) in cases {
        let e = layer_norm_naive(&x, d, wn, bn, eps as f64);
        check(
            &fast::layer_norm(&xa, wm, bm, eps).unwrap(),
            &[2, 3, 16],
            &e,
            1e-5,
            1e-5,
            &format!("layer_norm weight={} bias={}", wn.is_some(), bn.is_some()),
        );
    }
    // A transposed input: the normalized axis is the logical last one.
    let (xt, ts) = permute(&x, &[16, 6], &[1, 0]);
    let e = layer_norm_naive(&xt, 16, Some(&w), Some(&b), eps as f64);
    check(
        &fast::layer_norm(
            &arr(&x, &[16, 6]).transpose(&[]).unwrap(),
            Some(&wa),
            Some(&ba),
            eps,
        )
        .unwrap(),
        &ts,
        &e,
        1e-5,
        1e-5,
        "layer_norm of transposed",
    );
    // A large eps visibly changes the result (the eps is really used).
    let e = layer_norm_naive(&x, d, None, None, 0.5);
    check(
        &fast::layer_norm(&xa, None, None, 0.5).unwrap(),
        &[2, 3, 16],
        &e,
        1e-5,
        1e-5,
        "layer_norm eps=0.5",
    );
}

#[test]
fn rms_norm_with_and_without_weight() {
    let d = 12;
    let x = rand_vec(4, 4 * d, -2.0, 2.0);
    let w = rand_vec(5, d, 0.5, 1.5);
    let naive = |x: &[f32], w: Option<&[f32]>, eps: f64| -> Vec<f64> {
        x.chunks(d)
            .flat_map(|row| {
                let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
                let inv = 1.0 / (ms + eps).sqrt();
                row.iter()
                    .enumerate()
                    .map(|(i, &v)| v as f64 * inv * w.map_or(1.0, |w| w[i] as f64))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let xa = arr(&x, &[4, 12]);
    check(
        &fast::rms_norm(&xa, Some(&arr(&w, &[12])), 1e-6).unwrap(),
        &[4, 12],
        &naive(&x, Some(&w), 1e-6),
        1e-5,
        1e-5,
        "rms_norm",
    );
    check(
        &fast::rms_norm(&xa, None, 1e-6).unwrap(),
        &[4, 12],
        &naive(&x, None, 1e-6),
        1e-5,
        1e-5,
        "rms_norm without weight",
    );
    check(
        &fast::rms_norm(&xa, None, 0.25).unwrap(),
        &[4, 12],
        &naive(&x, None, 0.25),
        1e-5,
        1e-5,
        "rms_norm eps=0.25",
    );
}

/// Rotary embedding of `x` shaped `[.., L, D]` (positions along axis -2,
/// starting at `offset`): feature pair `i < dims/2` rotates by
/// `(offset + t) * scale * base^(-2i/dims)`. Traditional pairs are
/// `(2i, 2i+1)`; otherwise `(i, i + dims/2)`. Features past `dims` pass through.
#[allow(clippy::too_many_arguments)]
fn rope_naive(
    x: &[f32],
    l: usize,
    d: usize,
    dims: usize,
    traditional: bool,
    base: f64,
    scale: f64,
    offset: usize,
) -> Vec<f64> {
    let half = dims / 2;
    let mut out = to_f64(x);
    for (row_i, row) in out.chunks_mut(d).enumerate() {
        let pos = (offset + row_i % l) as f64 * scale;
        for i in 0..half {
            let theta = pos * base.powf(-2.0 * i as f64 / dims as f64);
            let (c, s) = (theta.cos(), theta.sin());
            let (p, q) = if traditional {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (a, b) = (row[p], row[q]);
            row[p] = a * c - b * s;
            row[q] = a * s + b * c;
        }
    }
    out
}

#[test]
fn rope_both_conventions_with_offset_and_partial_dims() {
    let (b, h, l, d) = (1, 2, 5, 8);
    let x = data(6, b * h * l * d);
    let xa = arr(&x, &[1, 2, 5, 8]);
    for traditional in [false, true] {
        for (dims, base, scale, offset) in [
            (8, 10000.0, 1.0, 0),
            (8, 10000.0, 1.0, 3),
            (8, 500.0, 0.5, 7),
            (4, 10000.0, 1.0, 2),
            (6, 100.0, 2.0, 1),
        ] {
            let e = rope_naive(&x, l, d, dims, traditional, base, scale, offset);
            check(
                &fast::rope(
                    &xa,
                    dims as i32,
                    traditional,
                    base as f32,
                    scale as f32,
                    offset as i32,
                )
                .unwrap(),
                &[1, 2, 5, 8],
                &e,
                1e-5,
                1e-4,
                &format!(
                    "rope traditional={traditional} dims={dims} base={base} scale={scale} offset={offset}"
                ),
            );
        }
    }
}

#[test]
fn rope_of_a_transposed_input() {
    // Heads stored [B, L, H, D] and swapped to [B, H, L, D], as after a projection.
    let (l, h, d) = (4, 3, 6);
    let x = data(7, l * h * d);
    let (xt, ts) = permute(&x, &[1, 4, 3, 6], &[0, 2, 1, 3]);
    let e = rope_naive(&xt, l, d, d, false, 10000.0, 1.0, 5);
    check(
        &fast::rope(
            &arr(&x, &[1, 4, 3, 6]).swapaxes(1, 2).unwrap(),
            6,
            false,
            10000.0,
            1.0,
            5,
        )
        .unwrap(),
        &ts,
        &e,
        1e-5,
        1e-4,
        "rope transposed",
    );
}

enum NaiveMask<'a> {
    None,
    Causal,
    /// Additive, shaped `[lq, lk]`.
    Add(&'a [f32]),
}

/// `softmax(scale q kᵀ + mask) v`, q `[b, h, lq, d]`, k/v `[b, hk, lk, d]`.
#[allow(clippy::too_many_arguments)]
fn attention_naive(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (b, h, hk, lq, lk, d): (usize, usize, usize, usize, usize, usize),
    scale: f64,
    mask: NaiveMask,
) -> Vec<f64> {
    let rep = h / hk;
    let mut out = vec![0.0; b * h * lq * d];
    for bi in 0..b {
        for hi in 0..h {
            let kh = hi / rep;
            for i in 0..lq {
                let qrow = &q[((bi * h + hi) * lq + i) * d..][..d];
                let mut scores: Vec<f64> = (0..lk)
                    .map(|j| {
                        let krow = &k[((bi * hk + kh) * lk + j) * d..][..d];
                        let dot: f64 = qrow
                            .iter()
                            .zip(krow)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum();
                        dot * scale
                    })
                    .collect();
                match mask {
                    NaiveMask::None => {}
                    NaiveMask::Causal => {
                        for (j, s) in scores.iter_mut().enumerate() {
                            if j > i + (lk - lq) {
                                *s = f64::NEG_INFINITY;
                            }
                        }
                    }
                    NaiveMask::Add(m) => {
                        for (j, s) in scores.iter_mut().enumerate() {
                            *s += m[i * lk + j] as f64;
                        }
                    }
                }
                let p = softmax_naive(&scores);
                for t in 0..d {
                    out[((bi * h + hi) * lq + i) * d + t] = (0..lk)
                        .map(|j| p[j] * v[((bi * hk + kh) * lk + j) * d + t] as f64)
                        .sum();
                }
            }
        }
    }
    out
}

#[test]
fn sdpa_without_mask_with_causal_and_additive_masks() {
    let (b, h, lq, lk, d) = (2, 3, 4, 6, 8);
    let q = data(10, b * h * lq * d);
    let k = data(11, b * h * lk * d);
    let v = data(12, b * h * lk * d);
    let scale = 1.0 / (d as f64).sqrt();
    let (qa, ka, va) = (
        arr(&q, &[2, 3, 4, 8]),
        arr(&k, &[2, 3, 6, 8]),
        arr(&v, &[2, 3, 6, 8]),
    );
    let dims = (b, h, h, lq, lk, d);
    let shape = [2, 3, 4, 8];

    let e = attention_naive(&q, &k, &v, dims, scale, NaiveMask::None);
    let r = fast::scaled_dot_product_attention(&qa, &ka, &va, scale as f32, AttentionMask::None)
        .unwrap();
    check(&r, &shape, &e, 1e-5, 1e-4, "sdpa no mask");

    let e = attention_naive(&q, &k, &v, dims, scale, NaiveMask::Causal);
    let r = fast::scaled_dot_product_attention(&qa, &ka, &va, scale as f32, AttentionMask::Causal)
        .unwrap();
    check(&r, &shape, &e, 1e-5, 1e-4, "sdpa causal (lq < lk)");

    // An additive [lq, lk] mask broadcast over batch and heads, with -inf.
    let mut m = rand_vec(13, lq * lk, -2.0, 2.0);
    m[1] = f32::NEG_INFINITY;
    m[lk + 4] = -1e9;
    let e = attention_naive(&q, &k, &v, dims, scale, NaiveMask::Add(&m));
    let ma = arr(&m, &[4, 6]);
    let r =
        fast::scaled_dot_product_attention(&qa, &ka, &va, scale as f32, AttentionMask::Array(&ma))
            .unwrap();
    check(&r, &shape, &e, 1e-5, 1e-4, "sdpa additive mask");

    // A boolean mask (true = attend) equals the additive 0/-inf mask.
    let keep: Vec<bool> = (0..lq * lk).map(|i| (i * 7) % 5 != 0).collect();
    let add: Vec<f32> = keep
        .iter()
        .map(|&k| if k { 0.0 } else { f32::NEG_INFINITY })
        .collect();
    let e = attention_naive(&q, &k, &v, dims, scale, NaiveMask::Add(&add));
    let ba = Array::from_slice(&keep, &[4, 6]).unwrap();
    let r =
        fast::scaled_dot_product_attention(&qa, &ka, &va, scale as f32, AttentionMask::Array(&ba))
            .unwrap();
    check(&r, &shape, &e, 1e-5, 1e-4, "sdpa bool mask");
}

#[test]
fn sdpa_causal_square_and_single_query() {
    let (h, d) = (2, 4);
    for (lq, lk) in [(5, 5), (1, 7)] {
        let q = data(20 + lq as u64, h * lq * d);
        let k = data(30 + lk as u64, h * lk * d);
        let v = data(40 + lk as u64, h * lk * d);
        let e = attention_naive(&q, &k, &v, (1, h, h, lq, lk, d), 0.7, NaiveMask::Causal);
        let r = fast::scaled_dot_product_attention(
            &arr(&q, &[1, h as i32, lq as i32, d as i32]),
            &arr(&k, &[1, h as i32, lk as i32, d as i32]),
            &arr(&v, &[1, h as i32, lk as i32, d as i32]),
            0.7,
            AttentionMask::Causal,
        )
        .unwrap();
        check(
            &r,
            &[1, h as i32, lq as i32, d as i32],
            &e,
            1e-5,
            1e-4,
            &format!("causal {lq}x{lk}"),
        );
    }
}

#[test]
fn sdpa_grouped_query_attention() {
    let (b, lq, lk, d) = (1, 3, 5, 8);
    for (h, hk) in [(4, 2), (6, 1), (6, 3)] {
        let q = data(50 + h as u64, b * h * lq * d);
        let k = data(60 + hk as u64, b * hk * lk * d);
        let v = data(70 + hk as u64, b * hk * lk * d);
        for (mask, naive) in [
            (AttentionMask::None, NaiveMask::None),
            (AttentionMask::Causal, NaiveMask::Causal),
        ] {
            let e = attention_naive(&q, &k, &v, (b, h, hk, lq, lk, d), 0.35, naive);
            let r = fast::scaled_dot_product_attention(
                &arr(&q, &[1, h as i32, 3, 8]),
                &arr(&k, &[1, hk as i32, 5, 8]),
                &arr(&v, &[1, hk as i32, 5, 8]),
                0.35,
                mask,
            )
            .unwrap();
            check(
                &r,
                &[1, h as i32, 3, 8],
                &e,
                1e-5,
                1e-4,
                &format!("gqa h={h} hk={hk} {mask:?}"),
            );
        }
    }
}

#[test]
fn sdpa_of_transposed_heads() {
    // q/k/v stored [B, L, H, D] and swapped to [B, H, L, D].
    let (h, lq, lk, d) = (2, 3, 4, 4);
    let q = data(80, lq * h * d);
    let k = data(81, lk * h * d);
    let v = data(82, lk * h * d);
    let (qt, _) = permute(&q, &[1, 3, 2, 4], &[0, 2, 1, 3]);
    let (kt, _) = permute(&k, &[1, 4, 2, 4], &[0, 2, 1, 3]);
    let (vt, _) = permute(&v, &[1, 4, 2, 4], &[0, 2, 1, 3]);
    let e = attention_naive(&qt, &kt, &vt, (1, h, h, lq, lk, d), 0.5, NaiveMask::None);
    let sw = |x: &[f32], l: i32| arr(x, &[1, l, 2, 4]).swapaxes(1, 2).unwrap();
    let r = fast::scaled_dot_product_attention(
        &sw(&q, 3),
        &sw(&k, 4),
        &sw(&v, 4),
        0.5,
        AttentionMask::None,
    )
    .unwrap();
    check(&r, &[1, 2, 3, 4], &e, 1e-5, 1e-4, "sdpa transposed heads");
    assert_eq!(r.dtype(), Dtype::F32);
}
