//! Affine quantization, FFTs and random numbers.

mod common;

use common::*;
use mlx::quant::QuantizedMatrix;
use mlx::{fft, random, Array, Dtype};

/// Unpacks MLX's affine format by hand: `bits`-wide codes packed LSB-first
/// into u32 words, one (scale, bias) pair per `group` consecutive elements
/// of a row; `w = code * scale + bias`.
fn dequantize_naive(q: &QuantizedMatrix, rows: usize, cols: usize) -> Vec<f64> {
    let words = q.weight.to_vec::<u32>().unwrap();
    let scales = read(&q.scales);
    let biases = read(&q.biases);
    let bits = q.bits as usize;
    let per_word = 32 / bits;
    let mask = (1u32 << bits) - 1;
    let groups = cols / q.group_size as usize;
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let flat = r * cols + c;
            let code = (words[flat / per_word] >> ((flat % per_word) * bits)) & mask;
            let g = r * groups + c / q.group_size as usize;
            out.push(code as f64 * scales[g] as f64 + biases[g] as f64);
        }
    }
    out
}

#[test]
fn quantize_dequantize_error_is_within_half_a_step() {
    let (rows, cols) = (4, 256);
    // Rows with different ranges, one all-positive, one all-negative.
    let mut w = rand_vec(1, rows * cols, -1.0, 1.0);
    for (i, v) in w.iter_mut().enumerate() {
        match i / cols {
            1 => *v = *v * 0.05 + 0.3,
            2 => *v = *v * 3.0 - 4.0,
            _ => {}
        }
    }
    let wa = arr(&w, &[rows as i32, cols as i32]);
    for bits in [4, 8] {
        for group in [32, 64, 128] {
            let what = format!("bits={bits} group={group}");
            let q = QuantizedMatrix::quantize(&wa, group, bits).unwrap();
            assert_eq!((q.bits, q.group_size), (bits, group));
            assert_eq!(q.weight.dtype(), Dtype::U32, "{what}");
            assert_eq!(
                q.weight.shape(),
                vec![rows as i32, cols as i32 * bits / 32],
                "{what}"
            );
            let n_groups = (cols as i32) / group;
            assert_eq!(q.scales.shape(), vec![rows as i32, n_groups], "{what}");
            assert_eq!(q.biases.shape(), vec![rows as i32, n_groups], "{what}");

            // MLX's dequantize agrees with unpacking the codes by hand...
            let naive = dequantize_naive(&q, rows, cols);
            let deq = q.dequantize().unwrap();
            check(&deq, &[rows as i32, cols as i32], &naive, 1e-6, 1e-6, &what);

            // ...and every weight lies within half a quantization step.
            let scales = read(&q.scales);
            for (i, (&orig, &back)) in w.iter().zip(&naive).enumerate() {
                let g = (i / cols) * n_groups as usize + (i % cols) / group as usize;
                let step = scales[g].abs() as f64;
                assert!(step > 0.0);
                let err = (orig as f64 - back).abs();
                assert!(
                    err <= step / 2.0 * (1.0 + 1e-3) + 1e-7,
                    "{what}: element {i}: |{orig} - {back}| = {err} > step/2 = {}",
                    step / 2.0
                );
            }
            // The step itself matches the group's range over 2^bits - 1 levels
            // (up to MLX's nudging that keeps the range edge exact).
            for r in 0..rows {
                for gi in 0..n_groups as usize {
                    let grp = &w[r * cols + gi * group as usize..][..group as usize];
                    let lo = grp.iter().cloned().fold(f32::INFINITY, f32::min) as f64;
                    let hi = grp.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let ideal = (hi - lo) / ((1u32 << bits) - 1) as f64;
                    let step = scales[r * n_groups as usize + gi].abs() as f64;
                    assert!(
                        (step - ideal).abs() <= 0.1 * ideal,
                        "{what}: row {r} group {gi}: step {step} vs range/levels {ideal}"
                    );
                }
            }
        }
    }
}

#[test]
fn quantized_matmul_equals_matmul_with_dequantized_weights() {
    // A linear layer: x [3, 256] @ Wᵀ with W [16, 256] quantized along its rows.
    let (m, k, n) = (3, 256, 16);
    let x = data(2, m * k);
    let w = data(3, n * k);
    let xa = arr(&x, &[3, 256]);
    for bits in [4, 8] {
        for group in [32, 64, 128] {
            let q = QuantizedMatrix::quantize(&arr(&w, &[16, 256]), group, bits).unwrap();
            let wd = dequantize_naive(&q, n, k);
            let (wdt, _) = permute(&wd, &[16, 256], &[1, 0]);
            let e = matmul_naive(&to_f64(&x), &wdt, m, k, n);
            check(
                &q.matmul(&xa, true).unwrap(),
                &[3, 16],
                &e,
                1e-4,
                1e-4,
                &format!("x @ Wq^T bits={bits} group={group}"),
            );
        }
    }
    // Without transpose: x [2, 64] @ W [64, 128], W quantized along its last axis.
    let (m, k, n) = (2, 64, 128);
    let x = data(4, m * k);
    let w = data(5, k * n);
    let q = QuantizedMatrix::quantize(&arr(&w, &[64, 128]), 64, 4).unwrap();
    let wd = dequantize_naive(&q, k, n);
    let e = matmul_naive(&to_f64(&x), &wd, m, k, n);
    check(
        &q.matmul(&arr(&x, &[2, 64]), false).unwrap(),
        &[2, 128],
        &e,
        1e-4,
        1e-4,
        "x @ Wq",
    );
    // A batched input [2, 3, 256] through the transposed form.
    let x = data(6, 2 * 3 * 256);
    let w = data(7, 8 * 256);
    let q = QuantizedMatrix::quantize(&arr(&w, &[8, 256]), 128, 8).unwrap();
    let wd = dequantize_naive(&q, 8, 256);
    let (wdt, _) = permute(&wd, &[8, 256], &[1, 0]);
    let e = matmul_naive(&to_f64(&x), &wdt, 6, 256, 8);
    check(
        &q.matmul(&arr(&x, &[2, 3, 256]), true).unwrap(),
        &[2, 3, 8],
        &e,
        1e-4,
        1e-4,
        "batched x @ Wq^T",
    );
}

/// Naive real DFT of `x` zero-padded or truncated to `n`: `n/2 + 1` bins.
fn dft(x: &[f32], n: usize) -> (Vec<f64>, Vec<f64>) {
    let bins = n / 2 + 1;
    let mut re = vec![0.0; bins];
    let mut im = vec![0.0; bins];
    for k in 0..bins {
        for (t, &v) in x.iter().take(n).enumerate() {
            let ang = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
            re[k] += v as f64 * ang.cos();
            im[k] += v as f64 * ang.sin();
        }
    }
    (re, im)
}

/// Reads a complex64 array as (re, im) pairs from its raw bytes.
fn complex_parts(a: &Array) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(a.dtype(), Dtype::Complex64);
    let bytes = a.to_bytes().unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (
        floats.iter().step_by(2).cloned().collect(),
        floats.iter().skip(1).step_by(2).cloned().collect(),
    )
}

#[test]
fn rfft_matches_naive_dft() {
    for (len, n) in [(16, 16), (15, 15), (10, 16), (20, 12), (1, 1)] {
        let x = data(10 + len as u64, len);
        let r = fft::rfft(&arr(&x, &[len as i32]), n as i32, -1).unwrap();
        assert_eq!(r.shape(), vec![n as i32 / 2 + 1], "len {len} n {n}");
        let (re, im) = dft(&x, n);
        let (gr, gi) = complex_parts(&r);
        let what = format!("rfft len {len} n {n}");
        assert_close(&gr, &re, 1e-5, 1e-5, &what);
        assert_close(&gi, &im, 1e-5, 1e-5, &what);
    }
}

#[test]
fn rfft_along_each_axis_of_a_matrix() {
    let x = data(30, 6 * 8);
    let a = arr(&x, &[6, 8]);
    // Along the last axis: one transform per row.
    let r = fft::rfft(&a, 8, 1).unwrap();
    assert_eq!(r.shape(), vec![6, 5]);
    let (gr, gi) = complex_parts(&r);
    for row in 0..6 {
        let (re, im) = dft(&x[row * 8..row * 8 + 8], 8);
        assert_close(&gr[row * 5..row * 5 + 5], &re, 1e-5, 1e-5, "rows re");
        assert_close(&gi[row * 5..row * 5 + 5], &im, 1e-5, 1e-5, "rows im");
    }
    // Along axis 0: one transform per column.
    let r = fft::rfft(&a, 6, 0).unwrap();
    assert_eq!(r.shape(), vec![4, 8]);
    let (gr, gi) = complex_parts(&r);
    for col in 0..8 {
        let column: Vec<f32> = (0..6).map(|i| x[i * 8 + col]).collect();
        let (re, im) = dft(&column, 6);
        let got_re: Vec<f32> = (0..4).map(|k| gr[k * 8 + col]).collect();
        let got_im: Vec<f32> = (0..4).map(|k| gi[k * 8 + col]).collect();
        assert_close(&got_re, &re, 1e-5, 1e-5, "cols re");
        assert_close(&got_im, &im, 1e-5, 1e-5, "cols im");
    }
}

#[test]
fn irfft_inverts_rfft_and_matches_naive_inverse() {
    for n in [16, 15, 8] {
        let x = data(40 + n as u64, n);
        let spec = fft::rfft(&arr(&x, &[n as i32]), n as i32, -1).unwrap();
        let back = fft::irfft(&spec, n as i32, -1).unwrap();
        check(
            &back,
            &[n as i32],
            &to_f64(&x),
            1e-5,
            1e-5,
            &format!("round trip n={n}"),
        );
    }
    // A complex spectrum built from raw bytes, inverted by the naive
    // Hermitian inverse DFT (the imaginary parts of DC and Nyquist drop out).
    let n = 10usize;
    let bins = n / 2 + 1;
    let re = data(50, bins);
    let im = data(51, bins);
    let mut bytes = Vec::new();
    for k in 0..bins {
        bytes.extend(re[k].to_ne_bytes());
        bytes.extend(im[k].to_ne_bytes());
    }
    let spec = Array::from_bytes(&bytes, &[bins as i32], Dtype::Complex64).unwrap();
    let e: Vec<f64> = (0..n)
        .map(|t| {
            let mut acc = re[0] as f64;
            for k in 1..bins {
                let ang = 2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                let term = re[k] as f64 * ang.cos() - im[k] as f64 * ang.sin();
                acc += if 2 * k == n { term } else { 2.0 * term };
            }
            acc / n as f64
        })
        .collect();
    check(
        &fft::irfft(&spec, n as i32, -1).unwrap(),
        &[n as i32],
        &e,
        1e-5,
        1e-5,
        "irfft of a raw spectrum",
    );
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

#[test]
fn random_normal_shape_dtype_reproducibility_and_moments() {
    let a = random::normal(&[100, 100], Dtype::F32, 42).unwrap();
    assert_eq!((a.shape(), a.dtype()), (vec![100, 100], Dtype::F32));
    let v = read(&a);
    assert_eq!(
        v,
        read(&random::normal(&[100, 100], Dtype::F32, 42).unwrap())
    );
    assert_ne!(
        v,
        read(&random::normal(&[100, 100], Dtype::F32, 43).unwrap())
    );
    let (m, s) = mean_std(&v);
    assert!(m.abs() < 0.03, "mean {m}");
    assert!((s - 1.0).abs() < 0.03, "std {s}");
    // Tail mass: about 4.55% of samples beyond two sigma.
    let tail = v.iter().filter(|x| x.abs() > 2.0).count() as f64 / v.len() as f64;
    assert!((tail - 0.0455).abs() < 0.01, "tail {tail}");

    for dtype in [Dtype::F16, Dtype::BF16] {
        let h = random::normal(&[3, 4, 5], dtype, 7).unwrap();
        assert_eq!((h.shape(), h.dtype()), (vec![3, 4, 5], dtype));
    }
}

#[test]
fn random_uniform_range_and_moments() {
    let (lo, hi) = (-2.0f32, 3.0f32);
    let a = random::uniform(&[20000], Dtype::F32, lo, hi, 5).unwrap();
    assert_eq!((a.shape(), a.dtype()), (vec![20000], Dtype::F32));
    let v = read(&a);
    assert!(v.iter().all(|&x| (lo..hi).contains(&x)));
    assert_eq!(
        v,
        read(&random::uniform(&[20000], Dtype::F32, lo, hi, 5).unwrap())
    );
    assert_ne!(
        v,
        read(&random::uniform(&[20000], Dtype::F32, lo, hi, 6).unwrap())
    );
    let (m, s) = mean_std(&v);
    assert!((m - 0.5).abs() < 0.05, "mean {m}");
    let want = 5.0 / 12f64.sqrt();
    assert!((s - want).abs() < 0.03, "std {s} vs {want}");
    // Each fifth of the range gets about a fifth of the samples.
    for bucket in 0..5 {
        let (a, b) = (lo + bucket as f32, lo + bucket as f32 + 1.0);
        let frac = v.iter().filter(|&&x| x >= a && x < b).count() as f64 / v.len() as f64;
        assert!((frac - 0.2).abs() < 0.015, "bucket {bucket}: {frac}");
    }
    let h = random::uniform(&[2, 8], Dtype::F16, 0.0, 1.0, 1).unwrap();
    assert_eq!(h.dtype(), Dtype::F16);
    let hv = h.to_vec::<half::f16>().unwrap();
    assert!(hv.iter().all(|x| x.to_f32() >= 0.0 && x.to_f32() <= 1.0));
}
