//! Invalid arguments come back as `Err` with a useful message; none of them
//! aborts the process.

mod common;

use common::*;
use mlx::fast::{self, AttentionMask};
use mlx::io::{load_safetensors, save_safetensors};
use mlx::quant::QuantizedMatrix;
use mlx::{concatenate, fft, random, stack, Array, Dtype, Error, Reduction};

fn assert_err_contains<T: std::fmt::Debug>(r: mlx::Result<T>, needles: &[&str]) {
    let msg = err_text(r);
    for n in needles {
        assert!(
            msg.to_lowercase().contains(&n.to_lowercase()),
            "error {msg:?} does not mention {n:?}"
        );
    }
}

fn a23() -> Array {
    arr(&data(1, 6), &[2, 3])
}

#[test]
fn shape_mismatches() {
    let a = a23();
    let b = arr(&data(2, 8), &[2, 4]);
    assert_err_contains(a.matmul(&b), &["matmul", "(2,3)", "(2,4)"]);
    assert_err_contains(a.add(&b), &["broadcast", "(2,3)", "(2,4)"]);
    assert_err_contains(a.multiply(&arr(&[1.0, 2.0], &[2])), &["broadcast"]);
    assert_err_contains(a.broadcast_to(&[4, 3]), &["broadcast"]);
    assert_err_contains(
        Array::from_slice(&[true, false], &[2])
            .unwrap()
            .select(&a, &a),
        &["broadcast"],
    );
    assert_err_contains(a.addmm(&a, &b, 1.0, 1.0), &["addmm"]);
    assert_err_contains(
        a.slice_update(&b, &[0, 0], &[2, 3], &[1, 1]),
        &["broadcast"],
    );
    assert_err_contains(concatenate(&[&a, &b], 0), &["concatenate"]);
    assert_err_contains(concatenate(&[], 0), &["concatenate"]);
    assert_err_contains(stack(&[&a, &b], 0), &["stack"]);
    assert_err_contains(
        a.take_along_axis(&Array::from_slice(&[0i32], &[1]).unwrap(), 1),
        &["take_along_axis"],
    );
    assert_err_contains(a.take(&arr(&[0.0], &[1]), 1), &["indices"]);
}

#[test]
fn reshape_to_the_wrong_size() {
    assert_err_contains(a23().reshape(&[4, 2]), &["reshape", "6", "(4,2)"]);
    assert_err_contains(a23().reshape(&[-1, 4]), &["reshape"]);
}

#[test]
fn bad_axes() {
    let a = a23();
    assert_err_contains(a.sum(&[2], false), &["axis 2"]);
    assert_err_contains(a.mean(&[-3], true), &["axis -3"]);
    assert_err_contains(a.argmax(5, false), &["axis 5"]);
    assert_err_contains(a.cumsum(2), &["axis"]);
    assert_err_contains(a.reduce(Reduction::CumSum, &[0, 1], false), &["cumsum"]);
    assert_err_contains(a.reduce(Reduction::ArgMin, &[], false), &["argmin"]);
    assert_err_contains(a.softmax(&[4], false), &["axis 4"]);
    assert_err_contains(a.log_softmax(2), &["axis"]);
    assert_err_contains(a.transpose(&[0]), &["transpose"]);
    assert_err_contains(a.transpose(&[0, 0]), &["transpose"]);
    assert_err_contains(a.swapaxes(0, 3), &["swapaxes"]);
    assert_err_contains(a.squeeze(&[0]), &["squeeze"]);
    assert_err_contains(a.expand_dims(&[5]), &["expand_dims"]);
    assert_err_contains(a.slice(&[0], &[1], &[1]), &["slice"]);
    assert_err_contains(a.slice_axis(3, 0, 1), &["slice_axis", "3"]);
    assert_err_contains(a.slice_axis(-3, 0, 1), &["slice_axis", "axis -3"]);
    assert_err_contains(a.sort(2), &["axis"]);
    assert_err_contains(a.topk(5, -1), &["topk"]);
    assert_err_contains(a.argpartition(3, -1), &["argpartition"]);
    assert_err_contains(a.dim(2), &["axis 2"]);
    assert_err_contains(fft::rfft(&a, 4, 3), &["axis"]);
    assert_err_contains(a.pad(&[0], &[-1], &[0], 0.0), &["pad"]);
}

#[test]
fn as_strided_views_outside_the_data_are_rejected() {
    // MLX does not bounds-check strided views; the binding must, or safe
    // code could read past the buffer.
    let a = a23(); // 6 elements
    assert_err_contains(a.as_strided(&[12], &[1], 0), &["as_strided", "outside"]);
    assert_err_contains(a.as_strided(&[3, 3], &[2, 1], 0), &["as_strided"]);
    assert_err_contains(a.as_strided(&[2], &[1], 5), &["as_strided"]);
    assert_err_contains(a.as_strided(&[3], &[-1], 1), &["as_strided"]);
    assert_err_contains(a.as_strided(&[2, 3], &[3], 0), &["as_strided", "length"]);
    assert_err_contains(a.as_strided(&[-1], &[1], 0), &["as_strided", "negative"]);
    // The largest in-bounds views are fine.
    let x = data(1, 6);
    check(
        &a.as_strided(&[6], &[1], 0).unwrap(),
        &[6],
        &to_f64(&x),
        0.0,
        0.0,
        "whole buffer",
    );
    check(
        &a.as_strided(&[3], &[-2], 5).unwrap(),
        &[3],
        &[x[5] as f64, x[3] as f64, x[1] as f64],
        0.0,
        0.0,
        "negative stride",
    );
    assert_eq!(a.as_strided(&[0, 4], &[100, 100], 50).unwrap().size(), 0);
}

#[test]
fn from_slice_with_a_mismatched_length() {
    assert_err_contains(
        Array::from_slice(&[1.0f32, 2.0, 3.0], &[2, 2]),
        &["12", "16"],
    );
    assert_err_contains(Array::from_slice(&[1i32; 4], &[5]), &["byte length"]);
    assert_err_contains(Array::from_slice(&[1.0f32; 3], &[-1, 3]), &["negative"]);
    assert_err_contains(
        Array::from_bytes(&[0u8; 7], &[2], Dtype::F32),
        &["byte length"],
    );
}

#[test]
fn quantize_with_bad_arguments() {
    let w = arr(&data(3, 256), &[2, 128]);
    assert_err_contains(
        QuantizedMatrix::quantize(&w, 7, 4),
        &["quantize", "group size 7"],
    );
    assert_err_contains(
        QuantizedMatrix::quantize(&w, 48, 4),
        &["quantize", "group size"],
    );
    assert_err_contains(QuantizedMatrix::quantize(&w, 64, 7), &["quantize", "bits"]);
    assert_err_contains(
        QuantizedMatrix::quantize(&arr(&data(4, 200), &[2, 100]), 64, 4),
        &["quantize", "divisible"],
    );
    assert_err_contains(
        QuantizedMatrix::quantize(&arr(&data(5, 128), &[128]), 64, 4),
        &["quantize", "dimension"],
    );
    // Quantized matmul with an input of the wrong width.
    let q = QuantizedMatrix::quantize(&w, 64, 4).unwrap();
    assert_err_contains(
        q.matmul(&arr(&data(6, 64), &[1, 64]), true),
        &["quantized_matmul"],
    );
}

#[test]
fn missing_and_corrupt_safetensors_files() {
    let missing = "/nonexistent/dir/model.safetensors";
    let e = load_safetensors(missing).unwrap_err();
    assert!(matches!(e, Error::File { .. }), "{e:?}");
    assert!(e.to_string().contains(missing), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.safetensors");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not a safetensors file at all".to_vec()),
        ("too short", vec![0u8; 4]),
        ("empty", vec![]),
        ("header longer than file", {
            let mut v = 100u64.to_le_bytes().to_vec();
            v.extend(b"{}");
            v
        }),
        ("header not json", {
            let h = b"{not json at all}";
            let mut v = (h.len() as u64).to_le_bytes().to_vec();
            v.extend(h);
            v
        }),
        ("data shorter than offsets", {
            let h = br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
            let mut v = (h.len() as u64).to_le_bytes().to_vec();
            v.extend(h);
            v.extend([0u8; 4]);
            v
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        // Either loading fails, or (if MLX reads lazily) reading the data does.
        match load_safetensors(&path) {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(path.to_str().unwrap()),
                    "{what}: error does not name the file: {msg}"
                );
            }
            Ok(st) => {
                let failed = st.tensors.values().any(|t| t.to_bytes().is_err());
                assert!(failed, "{what}: a corrupt file loaded without error");
            }
        }
    }

    // Writing into a directory that does not exist names the file.
    let bad = dir.path().join("no/such/dir/out.safetensors");
    let e = save_safetensors(&bad, &Default::default(), &Default::default()).unwrap_err();
    assert!(e.to_string().contains(bad.to_str().unwrap()), "{e}");
}

#[test]
fn bad_arguments_to_fast_ops_conv_and_random() {
    let a = a23();
    assert_err_contains(
        fast::layer_norm(&a, Some(&arr(&data(1, 4), &[4])), None, 1e-5),
        &["layer_norm"],
    );
    assert_err_contains(
        fast::rms_norm(&a, Some(&arr(&data(1, 2), &[2])), 1e-5),
        &["rms_norm"],
    );
    assert_err_contains(fast::rope(&a, 4, false, 10000.0, 1.0, 0), &["rope"]);
    let q = arr(&data(1, 8), &[1, 1, 2, 4]);
    let k = arr(&data(2, 6), &[1, 1, 2, 3]);
    assert_err_contains(
        fast::scaled_dot_product_attention(&q, &k, &k, 1.0, AttentionMask::None),
        &["scaled_dot_product_attention"],
    );
    // Heads that do not divide evenly into groups.
    let q3 = arr(&data(3, 3 * 2 * 4), &[1, 3, 2, 4]);
    let k2 = arr(&data(4, 2 * 2 * 4), &[1, 2, 2, 4]);
    assert!(fast::scaled_dot_product_attention(&q3, &k2, &k2, 1.0, AttentionMask::None).is_err());
    assert_err_contains(
        a.reshape(&[1, 2, 3])
            .unwrap()
            .conv1d(&arr(&data(4, 8), &[2, 2, 2]), 1, 0, 1, 1),
        &["conv", "channels"],
    );
    assert_err_contains(
        arr(&data(1, 12), &[1, 4, 3]).conv1d(&arr(&data(4, 6), &[2, 1, 3]), 1, 0, 1, 2),
        &["groups"],
    );
    assert!(arr(&data(5, 16), &[1, 4, 4])
        .conv2d(&arr(&data(6, 9), &[1, 3, 3, 1]), [1, 1], [0, 0], [1, 1], 1)
        .is_err());
    assert_err_contains(random::normal(&[2], Dtype::I32, 0), &["normal"]);
    assert_err_contains(a.item::<f32>(), &["item", "[2, 3]"]);
}

#[test]
fn errors_leave_the_library_usable() {
    // A burst of failures followed by normal work.
    let a = a23();
    for _ in 0..50 {
        assert!(a.matmul(&a).is_err());
        assert!(a.reshape(&[7]).is_err());
    }
    let x = data(1, 6);
    let expected: Vec<f64> = x.iter().map(|&v| v as f64 * 2.0).collect();
    check(
        &a.mul_scalar(2.0).unwrap(),
        &[2, 3],
        &expected,
        1e-7,
        1e-7,
        "after errors",
    );
}
