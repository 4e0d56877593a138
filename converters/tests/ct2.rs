//! The CTranslate2 reader against files written byte by byte from the format
//! description in ctranslate2's `model_spec.py`, including malformed ones.

use std::path::Path;

use asr_converters::ct2::read_model_bin;
use asr_converters::{ConvertError, TensorDtype};

/// Writes a `model.bin` the way `ModelSpec._serialize` does.
struct Ct2Writer(Vec<u8>);

impl Ct2Writer {
    fn new(version: u32, spec: &str, variables: u32) -> Ct2Writer {
        let mut w = Ct2Writer(version.to_le_bytes().to_vec());
        w.string(spec);
        w.0.extend(3u32.to_le_bytes()); // revision
        w.0.extend(variables.to_le_bytes());
        w
    }

    fn string(&mut self, s: &str) {
        self.0.extend(((s.len() + 1) as u16).to_le_bytes());
        self.0.extend(s.as_bytes());
        self.0.push(0);
    }

    fn variable(&mut self, name: &str, shape: &[u32], type_id: u8, data: &[u8]) {
        self.string(name);
        self.0.push(shape.len() as u8);
        for d in shape {
            self.0.extend(d.to_le_bytes());
        }
        self.0.push(type_id);
        self.0.extend((data.len() as u32).to_le_bytes());
        self.0.extend(data);
    }

    fn aliases(&mut self, pairs: &[(&str, &str)]) {
        self.0.extend((pairs.len() as u32).to_le_bytes());
        for (alias, target) in pairs {
            self.string(alias);
            self.string(target);
        }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn sample_model() -> Vec<u8> {
    let mut w = Ct2Writer::new(6, "WhisperSpec", 4);
    // int8 weight [2, 3] with per-row scales: value = q / scale.
    w.variable("dense/weight", &[2, 3], 1, &[10u8, 246, 127, 1, 2, 3]); // 10, -10, 127 | 1, 2, 3
    w.variable("dense/weight_scale", &[2], 0, &f32_bytes(&[10.0, 0.5]));
    w.variable("norm/gamma", &[3], 4, &[0x00, 0x3c, 0x00, 0x40, 0x00, 0xc0]); // f16 1, 2, -2
    w.variable("num_heads", &[], 2, &6i16.to_le_bytes());
    w.aliases(&[("tied/weight", "norm/gamma")]);
    w.0
}

fn write(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("model.bin");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn reads_variables_dequantizes_int8_and_resolves_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let model = read_model_bin(&write(dir.path(), &sample_model())).unwrap();
    assert_eq!(
        (model.spec_name.as_str(), model.revision),
        ("WhisperSpec", 3)
    );
    let dense = &model.variables["dense/weight"];
    assert_eq!(
        (dense.dtype, dense.shape.clone()),
        (TensorDtype::F32, vec![2, 3])
    );
    assert_eq!(dense.to_f32(), vec![1.0, -1.0, 12.7, 2.0, 4.0, 6.0]);
    assert!(
        !model.variables.contains_key("dense/weight_scale"),
        "scales are folded into the weight"
    );
    assert_eq!(model.variables["norm/gamma"].to_f32(), vec![1.0, 2.0, -2.0]);
    assert_eq!(
        model.variables["tied/weight"],
        model.variables["norm/gamma"]
    );
    assert_eq!(model.variables["num_heads"].scalar_i64(), Some(6));
}

fn expect_format_error(bytes: &[u8], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), bytes);
    match read_model_bin(&path) {
        Err(e @ ConvertError::Format { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "error names the file: {msg}"
            );
            assert!(msg.contains(needle), "expected '{needle}' in: {msg}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn every_truncation_is_a_clear_error() {
    let full = sample_model();
    for cut in [0, 3, 7, 20, 40, full.len() / 2, full.len() - 1] {
        expect_format_error(&full[..cut], "truncated");
    }
}

#[test]
fn malformed_headers_and_payloads_are_refused() {
    expect_format_error(
        &Ct2Writer::new(9, "WhisperSpec", 0).0,
        "unsupported CTranslate2 binary version 9",
    );
    let mut bad_type = Ct2Writer::new(6, "X", 1);
    bad_type.variable("v", &[1], 42, &[0]);
    bad_type.aliases(&[]);
    expect_format_error(&bad_type.0, "unknown type id 42");
    let mut bad_size = Ct2Writer::new(6, "X", 1);
    bad_size.variable("v", &[2, 2], 0, &[0; 12]);
    bad_size.aliases(&[]);
    expect_format_error(&bad_size.0, "12 bytes for shape [2, 2]");
    let mut dangling = Ct2Writer::new(6, "X", 0);
    dangling.aliases(&[("a", "missing")]);
    expect_format_error(&dangling.0, "alias a points to missing missing");
    let mut trailing = sample_model();
    trailing.push(0);
    expect_format_error(&trailing, "unexpected bytes");
}

#[test]
fn impossible_shapes_and_unsupported_quantizations_are_refused() {
    let mut huge = Ct2Writer::new(6, "X", 1);
    huge.variable("v", &[u32::MAX; 3], 0, &[]);
    huge.aliases(&[]);
    expect_format_error(
        &huge.0,
        "v: shape [4294967295, 4294967295, 4294967295] has too many elements",
    );

    let mut wrong_scales = Ct2Writer::new(6, "X", 2);
    wrong_scales.variable("w", &[2, 1], 1, &[1, 2]);
    wrong_scales.variable("w_scale", &[3], 0, &f32_bytes(&[1.0; 3]));
    wrong_scales.aliases(&[]);
    expect_format_error(&wrong_scales.0, "w: 3 scales for 2 rows");

    // AWQ-style int4 packed into int32 with scales and zero points.
    let mut awq = Ct2Writer::new(6, "X", 3);
    awq.variable("w", &[1], 3, &[0; 4]);
    awq.variable("w_scale", &[1], 0, &f32_bytes(&[1.0]));
    awq.variable("w_zero", &[1], 0, &f32_bytes(&[0.0]));
    awq.aliases(&[]);
    expect_format_error(&awq.0, "w: zero-point (AWQ) quantization is not supported");

    let mut int32 = Ct2Writer::new(6, "X", 2);
    int32.variable("w", &[1], 3, &[0; 4]);
    int32.variable("w_scale", &[1], 0, &f32_bytes(&[1.0]));
    int32.aliases(&[]);
    expect_format_error(&int32.0, "w: I32 weights with a scale are not supported");
}
