//! Layers against naive Rust computations on small deterministic inputs.

use std::collections::BTreeMap;

use asr_models::nn::{Conv1d, Embedding, LayerNorm, Linear, Matrix};
use asr_models::weights::{WeightError, Weights};
use asr_models::Quantization;
use mlx::quant::QuantizedMatrix;
use mlx::Array;

/// Deterministic values in about [-1, 1].
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.731 + seed as f32 * 1.37).sin() * 0.9)
        .collect()
}

fn array(data: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(data, shape).unwrap()
}

fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= tol, "element {i}: {a} vs {e}");
    }
}

/// y[r][o] = sum_i x[r][i] * w[o][i] + b[o]
fn naive_linear(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    rows: usize,
    input: usize,
    output: usize,
) -> Vec<f32> {
    let mut y = vec![0.0; rows * output];
    for r in 0..rows {
        for o in 0..output {
            let dot: f32 = (0..input)
                .map(|i| x[r * input + i] * w[o * input + i])
                .sum();
            y[r * output + o] = dot + b.map_or(0.0, |b| b[o]);
        }
    }
    y
}

fn weights(entries: Vec<(&str, Array)>, q: Option<Quantization>) -> Weights {
    Weights::new(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>(),
        q,
    )
}

#[test]
fn linear_with_and_without_bias_matches_naive() {
    let (rows, input, output) = (3, 5, 4);
    let (x, w, b) = (
        values(rows * input, 1),
        values(output * input, 2),
        values(output, 3),
    );
    let ws = weights(
        vec![
            ("l.weight", array(&w, &[4, 5])),
            ("l.bias", array(&b, &[4])),
        ],
        None,
    );
    let with_bias = Linear::load(&ws, "l", 5, 4, true).unwrap();
    let y = with_bias
        .forward(&array(&x, &[3, 5]))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(
        &y,
        &naive_linear(&x, &w, Some(&b), rows, input, output),
        1e-5,
    );
    let no_bias = Linear::load(&ws, "l", 5, 4, false).unwrap();
    let y = no_bias
        .forward(&array(&x, &[3, 5]))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(&y, &naive_linear(&x, &w, None, rows, input, output), 1e-5);
}

#[test]
fn quantized_linear_equals_linear_on_the_dequantized_matrix() {
    let (input, output) = (128, 8);
    let w = values(output * input, 4);
    let q = QuantizedMatrix::quantize(&array(&w, &[8, 128]), 64, 8).unwrap();
    let dense: Vec<f32> = q.dequantize().unwrap().to_vec().unwrap();
    // 8-bit affine quantization of values in [-0.9, 0.9]: step ≈ 1.8/255 per group.
    assert_close(&dense, &w, 0.01);
    let ws = weights(
        vec![
            ("l.weight", q.weight.clone()),
            ("l.scales", q.scales.clone()),
            ("l.biases", q.biases.clone()),
            ("l.bias", array(&values(output, 5), &[8])),
        ],
        Some(Quantization {
            group_size: 64,
            bits: 8,
        }),
    );
    let layer = Linear::load(&ws, "l", 128, 8, true).unwrap();
    assert!(matches!(layer.weight, Matrix::Quantized(_)));
    let x = values(2 * input, 6);
    let y = layer
        .forward(&array(&x, &[2, 128]))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(
        &y,
        &naive_linear(&x, &dense, Some(&values(output, 5)), 2, input, output),
        1e-3,
    );
}

#[test]
fn quantized_weights_without_a_quantization_config_are_an_error() {
    let q = QuantizedMatrix::quantize(&array(&values(8 * 64, 1), &[8, 64]), 64, 4).unwrap();
    let ws = weights(
        vec![
            ("l.weight", q.weight),
            ("l.scales", q.scales),
            ("l.biases", q.biases),
        ],
        None,
    );
    let err = Linear::load(&ws, "l", 64, 8, false).unwrap_err();
    assert!(matches!(err, WeightError::NoQuantization { .. }), "{err}");
}

#[test]
fn missing_and_misshapen_weights_name_the_tensor() {
    let ws = weights(vec![("l.weight", array(&values(6, 1), &[2, 3]))], None);
    let err = Linear::load(&ws, "l", 3, 2, true).unwrap_err();
    assert!(err.to_string().contains("l.bias"), "{err}");
    let err = Linear::load(&ws, "l", 2, 3, false).unwrap_err();
    assert!(
        matches!(err, WeightError::Shape { .. }) && err.to_string().contains("l.weight"),
        "{err}"
    );
}

#[test]
fn layer_norm_matches_naive() {
    let (rows, dims) = (3, 6);
    let (x, g, b) = (values(rows * dims, 7), values(dims, 8), values(dims, 9));
    let ws = weights(
        vec![("n.weight", array(&g, &[6])), ("n.bias", array(&b, &[6]))],
        None,
    );
    let y = LayerNorm::load(&ws, "n", 6)
        .unwrap()
        .forward(&array(&x, &[3, 6]))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let mut expected = Vec::new();
    for row in x.chunks(dims) {
        let mean = row.iter().sum::<f32>() / dims as f32;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / dims as f32;
        expected.extend(
            row.iter()
                .enumerate()
                .map(|(i, v)| (v - mean) / (var + 1e-5).sqrt() * g[i] + b[i]),
        );
    }
    assert_close(&y, &expected, 1e-5);
}

#[test]
fn embedding_looks_up_rows_and_serves_as_tied_output() {
    let (vocab, dims) = (5, 3);
    let table = values(vocab * dims, 10);
    let ws = weights(vec![("e.weight", array(&table, &[5, 3]))], None);
    let emb = Embedding::load(&ws, "e", 5, 3).unwrap();
    let ids = Array::from_slice(&[4i32, 0, 4], &[3]).unwrap();
    let rows = emb.forward(&ids).unwrap().to_vec::<f32>().unwrap();
    let expected: Vec<f32> = [4, 0, 4]
        .iter()
        .flat_map(|&r| table[r * dims..(r + 1) * dims].to_vec())
        .collect();
    assert_eq!(rows, expected);
    let x = values(dims, 11);
    let logits = emb
        .as_linear(&array(&x, &[1, 3]))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(
        &logits,
        &naive_linear(&x, &table, None, 1, dims, vocab),
        1e-5,
    );
}

#[test]
fn quantized_embedding_rows_equal_dequantized_rows() {
    let table = values(4 * 64, 12);
    let q = QuantizedMatrix::quantize(&array(&table, &[4, 64]), 32, 4).unwrap();
    let dense: Vec<f32> = q.dequantize().unwrap().to_vec().unwrap();
    let ws = weights(
        vec![
            ("e.weight", q.weight),
            ("e.scales", q.scales),
            ("e.biases", q.biases),
        ],
        Some(Quantization {
            group_size: 32,
            bits: 4,
        }),
    );
    let emb = Embedding::load(&ws, "e", 4, 64).unwrap();
    let rows = emb
        .forward(&Array::from_slice(&[2i32], &[1]).unwrap())
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(&rows, &dense[2 * 64..3 * 64], 1e-6);
}

#[test]
fn conv1d_with_stride_and_same_padding_matches_naive() {
    let (len, cin, cout, k, stride) = (7usize, 3usize, 2usize, 3usize, 2usize);
    let (x, w, b) = (
        values(len * cin, 13),
        values(cout * k * cin, 14),
        values(cout, 15),
    );
    let ws = weights(
        vec![
            ("c.weight", array(&w, &[2, 3, 3])),
            ("c.bias", array(&b, &[2])),
        ],
        None,
    );
    let conv = Conv1d::load(&ws, "c", 3, 2, 3, 2).unwrap();
    let y = conv.forward(&array(&x, &[1, 7, 3])).unwrap();
    let out_len = (len + 2 - k) / stride + 1;
    assert_eq!(y.shape(), vec![1, out_len as i32, 2]);
    let mut expected = vec![0.0f32; out_len * cout];
    for t in 0..out_len {
        for o in 0..cout {
            let mut acc = b[o];
            for kk in 0..k {
                let pos = (t * stride + kk) as isize - 1; // padding 1
                if pos < 0 || pos as usize >= len {
                    continue;
                }
                for c in 0..cin {
                    acc += x[pos as usize * cin + c] * w[(o * k + kk) * cin + c];
                }
            }
            expected[t * cout + o] = acc;
        }
    }
    assert_close(&y.to_vec::<f32>().unwrap(), &expected, 1e-5);
}

#[test]
fn stacked_linears_equal_the_separate_layers_side_by_side() {
    let (input, rows) = (64, 3);
    let x = array(&values(rows * input, 20), &[rows as i32, 1, input as i32]);
    let part = |seed: u32, output: usize, bias: bool, quantize: bool| {
        let w = array(
            &values(output * input, seed),
            &[output as i32, input as i32],
        );
        let weight = if quantize {
            Matrix::Quantized(QuantizedMatrix::quantize(&w, 32, 8).unwrap())
        } else {
            Matrix::Dense(w)
        };
        let bias = bias.then(|| array(&values(output, seed + 1), &[output as i32]));
        Linear { weight, bias }
    };
    for quantize in [false, true] {
        // A query-key-value stack: the key has no bias (zeros in the stack).
        let parts = [
            part(21, 32, true, quantize),
            part(23, 32, false, quantize),
            part(25, 16, true, quantize),
        ];
        let stacked = Linear::stack(&parts).unwrap();
        let together: Vec<f32> = stacked.forward(&x).unwrap().to_vec().unwrap();
        let apart: Vec<Vec<f32>> = parts
            .iter()
            .map(|p| p.forward(&x).unwrap().to_vec().unwrap())
            .collect();
        for r in 0..rows {
            let row: Vec<f32> = apart
                .iter()
                .flat_map(|a| {
                    let n = a.len() / rows;
                    a[r * n..(r + 1) * n].to_vec()
                })
                .collect();
            assert_eq!(
                &together[r * 80..(r + 1) * 80],
                &row[..],
                "row {r}, quantized {quantize}"
            );
        }
    }
    // Dense and quantized parts do not stack.
    let mixed = Linear::stack(&[part(27, 8, true, false), part(29, 8, true, true)]);
    assert!(mixed.is_err());
}
