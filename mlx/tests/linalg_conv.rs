//! Matrix products (plain, batched, broadcast, transposed inputs), addmm and
//! channels-last convolutions, against naive loops.

mod common;

use common::*;
use mlx::{Array, BinaryOp, Dtype};

#[test]
fn matmul_2d_and_vector_cases() {
    let (m, k, n) = (3, 4, 5);
    let a = data(1, m * k);
    let b = data(2, k * n);
    let e = matmul_naive(&to_f64(&a), &to_f64(&b), m, k, n);
    let (xa, xb) = (arr(&a, &[3, 4]), arr(&b, &[4, 5]));
    check(&xa.matmul(&xb).unwrap(), &[3, 5], &e, 1e-6, 1e-5, "matmul");
    check(
        &xa.binary(BinaryOp::Matmul, &xb).unwrap(),
        &[3, 5],
        &e,
        1e-6,
        1e-5,
        "BinaryOp::Matmul",
    );
    // A 1-D left operand is a row vector; a 1-D right operand a column.
    let v = data(3, k);
    let e = matmul_naive(&to_f64(&v), &to_f64(&b), 1, k, n);
    check(
        &arr(&v, &[4]).matmul(&xb).unwrap(),
        &[5],
        &e,
        1e-6,
        1e-5,
        "vector @ matrix",
    );
    let e = matmul_naive(&to_f64(&a), &to_f64(&v), m, k, 1);
    check(
        &xa.matmul(&arr(&v, &[4])).unwrap(),
        &[3],
        &e,
        1e-6,
        1e-5,
        "matrix @ vector",
    );
}

#[test]
fn matmul_of_transposed_inputs() {
    // aᵀ and bᵀ as views: [4, 3]ᵀ @ [5, 4]ᵀ.
    let a = data(4, 12);
    let b = data(5, 20);
    let (at, _) = permute(&a, &[4, 3], &[1, 0]);
    let (bt, _) = permute(&b, &[5, 4], &[1, 0]);
    let e = matmul_naive(&to_f64(&at), &to_f64(&bt), 3, 4, 5);
    let r = arr(&a, &[4, 3])
        .transpose(&[])
        .unwrap()
        .matmul(&arr(&b, &[5, 4]).transpose(&[]).unwrap())
        .unwrap();
    check(&r, &[3, 5], &e, 1e-6, 1e-5, "aT @ bT");
}

fn batched_naive(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
    (0..batch)
        .flat_map(|i| {
            matmul_naive(
                &to_f64(&a[i * m * k..(i + 1) * m * k]),
                &to_f64(&b[i * k * n..(i + 1) * k * n]),
                m,
                k,
                n,
            )
        })
        .collect()
}

#[test]
fn batched_and_broadcast_matmul() {
    let (m, k, n) = (3, 4, 2);
    let a = data(6, 2 * 3 * m * k);
    let b = data(7, 2 * 3 * k * n);
    let e = batched_naive(&a, &b, 6, m, k, n);
    check(
        &arr(&a, &[2, 3, 3, 4])
            .matmul(&arr(&b, &[2, 3, 4, 2]))
            .unwrap(),
        &[2, 3, 3, 2],
        &e,
        1e-6,
        1e-5,
        "batched matmul",
    );
    // [2, 3, 3, 4] @ [4, 2]: the right operand broadcasts over the batch.
    let b1 = data(8, k * n);
    let b_rep: Vec<f32> = (0..6).flat_map(|_| b1.clone()).collect();
    let e = batched_naive(&a, &b_rep, 6, m, k, n);
    check(
        &arr(&a, &[2, 3, 3, 4]).matmul(&arr(&b1, &[4, 2])).unwrap(),
        &[2, 3, 3, 2],
        &e,
        1e-6,
        1e-5,
        "broadcast batch",
    );
    // [2, 1, 3, 4] @ [3, 4, 2] -> [2, 3, 3, 2]: batch dims broadcast both ways.
    let a2 = data(9, 2 * m * k);
    let b2 = data(10, 3 * k * n);
    let mut e = Vec::new();
    for i in 0..2 {
        for j in 0..3 {
            e.extend(matmul_naive(
                &to_f64(&a2[i * m * k..(i + 1) * m * k]),
                &to_f64(&b2[j * k * n..(j + 1) * k * n]),
                m,
                k,
                n,
            ));
        }
    }
    check(
        &arr(&a2, &[2, 1, 3, 4])
            .matmul(&arr(&b2, &[3, 4, 2]))
            .unwrap(),
        &[2, 3, 3, 2],
        &e,
        1e-6,
        1e-5,
        "two-sided batch broadcast",
    );
    // Attention-style: q @ kᵀ with k transposed by swapaxes.
    let q = data(11, 2 * 3 * 4);
    let kk = data(12, 2 * 5 * 4);
    let mut e = Vec::new();
    for h in 0..2 {
        let (kt, _) = permute(&kk[h * 20..(h + 1) * 20], &[5, 4], &[1, 0]);
        e.extend(matmul_naive(
            &to_f64(&q[h * 12..(h + 1) * 12]),
            &to_f64(&kt),
            3,
            4,
            5,
        ));
    }
    check(
        &arr(&q, &[2, 3, 4])
            .matmul(&arr(&kk, &[2, 5, 4]).swapaxes(-1, -2).unwrap())
            .unwrap(),
        &[2, 3, 5],
        &e,
        1e-6,
        1e-5,
        "q @ kT",
    );
}

#[test]
fn integer_and_half_matmul() {
    let a: Vec<i32> = (0..6).map(|i| i - 2).collect();
    let b: Vec<i32> = (0..6).map(|i| 3 - i).collect();
    let r = Array::from_slice(&a, &[2, 3])
        .unwrap()
        .astype(Dtype::F32)
        .unwrap()
        .matmul(
            &Array::from_slice(&b, &[3, 2])
                .unwrap()
                .astype(Dtype::F32)
                .unwrap(),
        )
        .unwrap();
    let e = matmul_naive(
        &a.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        &b.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        2,
        3,
        2,
    );
    check(&r, &[2, 2], &e, 0.0, 0.0, "small integers in f32");

    let x = data(13, 8 * 16);
    let w = data(14, 16 * 4);
    let h = |v: &[f32]| -> Vec<half::f16> { v.iter().map(|&f| half::f16::from_f32(f)).collect() };
    let (xh, wh) = (h(&x), h(&w));
    let r = Array::from_slice(&xh, &[8, 16])
        .unwrap()
        .matmul(&Array::from_slice(&wh, &[16, 4]).unwrap())
        .unwrap();
    assert_eq!(r.dtype(), Dtype::F16);
    let back = |v: &[half::f16]| -> Vec<f64> { v.iter().map(|f| f.to_f64()).collect() };
    let e = matmul_naive(&back(&xh), &back(&wh), 8, 16, 4);
    assert_close(&read_f16(&r), &e, 5e-3, 5e-3, "f16 matmul");
}

#[test]
fn addmm_is_beta_c_plus_alpha_ab() {
    let (m, k, n) = (3, 4, 5);
    let a = data(15, m * k);
    let b = data(16, k * n);
    let c = data(17, m * n);
    let ab = matmul_naive(&to_f64(&a), &to_f64(&b), m, k, n);
    let (alpha, beta) = (0.5f32, -2.0f32);
    let e: Vec<f64> = ab
        .iter()
        .zip(&c)
        .map(|(p, &q)| beta as f64 * q as f64 + alpha as f64 * p)
        .collect();
    let r = arr(&c, &[3, 5])
        .addmm(&arr(&a, &[3, 4]), &arr(&b, &[4, 5]), alpha, beta)
        .unwrap();
    check(&r, &[3, 5], &e, 1e-6, 1e-5, "addmm");
    // A bias row broadcast over the output rows (a linear layer).
    let bias = data(18, n);
    let e: Vec<f64> = (0..m * n).map(|i| ab[i] + bias[i % n] as f64).collect();
    let r = arr(&bias, &[5])
        .addmm(&arr(&a, &[3, 4]), &arr(&b, &[4, 5]), 1.0, 1.0)
        .unwrap();
    check(&r, &[3, 5], &e, 1e-6, 1e-5, "addmm with bias row");
    // With a transposed weight, as in x @ Wᵀ + b.
    let wt = data(19, n * k); // W is [n, k]
    let (w_t, _) = permute(&wt, &[5, 4], &[1, 0]);
    let xw = matmul_naive(&to_f64(&a), &to_f64(&w_t), m, k, n);
    let e: Vec<f64> = (0..m * n).map(|i| xw[i] + bias[i % n] as f64).collect();
    let r = arr(&bias, &[5])
        .addmm(
            &arr(&a, &[3, 4]),
            &arr(&wt, &[5, 4]).transpose(&[]).unwrap(),
            1.0,
            1.0,
        )
        .unwrap();
    check(&r, &[3, 5], &e, 1e-6, 1e-5, "addmm x @ WT + b");
}

/// Naive conv1d, channels last: x [n, l, cin], w [cout, k, cin/groups].
#[allow(clippy::too_many_arguments)]
fn conv1d_naive(
    x: &[f32],
    (n, l, cin): (usize, usize, usize),
    w: &[f32],
    (cout, k): (usize, usize),
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
) -> (Vec<f64>, Vec<i32>) {
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let lout = (l + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    let mut out = vec![0.0; n * lout * cout];
    for b in 0..n {
        for o in 0..lout {
            for co in 0..cout {
                let g = co / cout_g;
                let mut acc = 0.0f64;
                for t in 0..k {
                    let pos = (o * stride + t * dil) as isize - pad as isize;
                    if pos < 0 || pos >= l as isize {
                        continue;
                    }
                    for ci in 0..cin_g {
                        let xv = x[(b * l + pos as usize) * cin + g * cin_g + ci] as f64;
                        let wv = w[(co * k + t) * cin_g + ci] as f64;
                        acc += xv * wv;
                    }
                }
                out[(b * lout + o) * cout + co] = acc;
            }
        }
    }
    (out, vec![n as i32, lout as i32, cout as i32])
}

#[test]
fn conv1d_matches_naive_loops() {
    // (n, l, cin, cout, k, stride, pad, dilation, groups)
    let cases = [
        (1, 10, 3, 4, 3, 1, 0, 1, 1),
        (2, 11, 4, 6, 3, 2, 1, 1, 1),
        (1, 12, 2, 3, 3, 1, 2, 2, 1),
        (2, 9, 4, 6, 2, 1, 1, 1, 2),
        (1, 16, 6, 6, 3, 3, 1, 2, 3),
        (1, 8, 4, 4, 3, 1, 1, 1, 4), // depthwise
    ];
    for (i, &(n, l, cin, cout, k, s, p, d, g)) in cases.iter().enumerate() {
        let x = data(100 + i as u64, n * l * cin);
        let w = data(200 + i as u64, cout * k * (cin / g));
        let (e, shape) = conv1d_naive(&x, (n, l, cin), &w, (cout, k), s, p, d, g);
        let r = arr(&x, &[n as i32, l as i32, cin as i32])
            .conv1d(
                &arr(&w, &[cout as i32, k as i32, (cin / g) as i32]),
                s as i32,
                p as i32,
                d as i32,
                g as i32,
            )
            .unwrap();
        check(&r, &shape, &e, 1e-5, 1e-5, &format!("conv1d case {i}"));
    }
}

#[test]
fn conv1d_on_channels_first_data_transposed_to_channels_last() {
    // A Whisper-style front end: features stored [n, cin, l], swapped to [n, l, cin].
    let (n, cin, l, cout, k) = (1, 5, 12, 4, 3);
    let xf = data(300, n * cin * l);
    let (xl, _) = permute(&xf, &[1, 5, 12], &[0, 2, 1]);
    let w = data(301, cout * k * cin);
    let (e, shape) = conv1d_naive(&xl, (n, l, cin), &w, (cout, k), 2, 1, 1, 1);
    let r = arr(&xf, &[1, 5, 12])
        .swapaxes(1, 2)
        .unwrap()
        .conv1d(&arr(&w, &[4, 3, 5]), 2, 1, 1, 1)
        .unwrap();
    check(&r, &shape, &e, 1e-5, 1e-5, "conv1d of transposed input");
}

/// Naive conv2d, channels last: x [n, h, w, cin], weight [cout, kh, kw, cin/groups].
#[allow(clippy::too_many_arguments)]
fn conv2d_naive(
    x: &[f32],
    (n, h, wd, cin): (usize, usize, usize, usize),
    w: &[f32],
    (cout, kh, kw): (usize, usize, usize),
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    groups: usize,
) -> (Vec<f64>, Vec<i32>) {
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let ho = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) / stride[0] + 1;
    let wo = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) / stride[1] + 1;
    let mut out = vec![0.0; n * ho * wo * cout];
    for b in 0..n {
        for oy in 0..ho {
            for ox in 0..wo {
                for co in 0..cout {
                    let g = co / cout_g;
                    let mut acc = 0.0f64;
                    for ty in 0..kh {
                        let y = (oy * stride[0] + ty * dil[0]) as isize - pad[0] as isize;
                        if y < 0 || y >= h as isize {
                            continue;
                        }
                        for tx in 0..kw {
                            let xx = (ox * stride[1] + tx * dil[1]) as isize - pad[1] as isize;
                            if xx < 0 || xx >= wd as isize {
                                continue;
                            }
                            for ci in 0..cin_g {
                                let xv = x[((b * h + y as usize) * wd + xx as usize) * cin
                                    + g * cin_g
                                    + ci] as f64;
                                let wv = w[((co * kh + ty) * kw + tx) * cin_g + ci] as f64;
                                acc += xv * wv;
                            }
                        }
                    }
                    out[((b * ho + oy) * wo + ox) * cout + co] = acc;
                }
            }
        }
    }
    (out, vec![n as i32, ho as i32, wo as i32, cout as i32])
}

#[test]
fn conv2d_matches_naive_loops() {
    // (n, h, w, cin, cout, kh, kw, stride, pad, dilation, groups)
    let cases = [
        (1, 6, 5, 2, 3, 3, 3, [1, 1], [0, 0], [1, 1], 1),
        (2, 7, 6, 3, 4, 3, 2, [2, 1], [1, 2], [1, 1], 1),
        (1, 8, 8, 2, 2, 3, 3, [1, 2], [2, 1], [2, 1], 1),
        (1, 6, 6, 4, 6, 2, 3, [1, 1], [1, 1], [1, 1], 2),
    ];
    for (i, &(n, h, w, cin, cout, kh, kw, s, p, d, g)) in cases.iter().enumerate() {
        let x = data(400 + i as u64, n * h * w * cin);
        let wt = data(500 + i as u64, cout * kh * kw * (cin / g));
        let (e, shape) = conv2d_naive(&x, (n, h, w, cin), &wt, (cout, kh, kw), s, p, d, g);
        let to_i = |a: [usize; 2]| [a[0] as i32, a[1] as i32];
        let r = arr(&x, &[n as i32, h as i32, w as i32, cin as i32])
            .conv2d(
                &arr(&wt, &[cout as i32, kh as i32, kw as i32, (cin / g) as i32]),
                to_i(s),
                to_i(p),
                to_i(d),
                g as i32,
            )
            .unwrap();
        check(&r, &shape, &e, 1e-5, 1e-5, &format!("conv2d case {i}"));
    }
}
