//! safetensors: round trips through MLX's writer and reader, the written
//! layout checked by hand, and a hand-written file read by MLX.

mod common;

use std::collections::BTreeMap;

use common::*;
use half::{bf16, f16};
use mlx::io::{load_safetensors, save_safetensors, SafeTensors};
use mlx::{Array, Dtype};

fn sample_tensors() -> BTreeMap<String, Array> {
    let f = data(1, 12);
    let mut t = BTreeMap::new();
    t.insert("f32".to_string(), arr(&f, &[3, 4]));
    let h: Vec<f16> = f.iter().map(|&v| f16::from_f32(v)).collect();
    t.insert("f16".into(), Array::from_slice(&h, &[2, 6]).unwrap());
    let b: Vec<bf16> = f.iter().map(|&v| bf16::from_f32(v)).collect();
    t.insert("bf16".into(), Array::from_slice(&b, &[12]).unwrap());
    t.insert(
        "i32".into(),
        Array::from_slice(&[i32::MIN, -1, 0, i32::MAX], &[2, 2]).unwrap(),
    );
    t.insert(
        "u32".into(),
        Array::from_slice(&[0u32, u32::MAX, 77], &[3]).unwrap(),
    );
    t.insert(
        "u8".into(),
        Array::from_slice(&[0u8, 128, 255], &[3, 1]).unwrap(),
    );
    t.insert(
        "i64".into(),
        Array::from_slice(&[i64::MIN, 1 << 50], &[2]).unwrap(),
    );
    t.insert(
        "bool".into(),
        Array::from_slice(&[true, false, true], &[3]).unwrap(),
    );
    t.insert("scalar".into(), Array::scalar(3.25f32).unwrap());
    t.insert(
        "encoder.blocks.0.attn.query.weight".into(),
        arr(&data(2, 8), &[2, 4]),
    );
    t
}

fn assert_same(a: &Array, b: &Array, name: &str) {
    assert_eq!(a.dtype(), b.dtype(), "{name}: dtype");
    assert_eq!(a.shape(), b.shape(), "{name}: shape");
    assert_eq!(
        a.to_bytes().unwrap(),
        b.to_bytes().unwrap(),
        "{name}: bytes"
    );
}

#[test]
fn round_trip_with_metadata_and_many_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let tensors = sample_tensors();
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_string(), "mlx".to_string());
    metadata.insert(
        "model".to_string(),
        "tiny test, with spaces & ünïcode".to_string(),
    );
    save_safetensors(&path, &tensors, &metadata).unwrap();

    let loaded = load_safetensors(&path).unwrap();
    assert_eq!(loaded.metadata, metadata);
    assert_eq!(
        loaded.tensors.keys().collect::<Vec<_>>(),
        tensors.keys().collect::<Vec<_>>()
    );
    for (name, a) in &tensors {
        assert_same(&loaded.tensors[name], a, name);
    }
    // Typed reads of a few of them, against the Rust-side values.
    assert_eq!(
        loaded.tensors["i64"].to_vec::<i64>().unwrap(),
        vec![i64::MIN, 1 << 50]
    );
    assert_eq!(
        loaded.tensors["bool"].to_vec::<bool>().unwrap(),
        vec![true, false, true]
    );
    assert_eq!(loaded.tensors["scalar"].item::<f32>().unwrap(), 3.25);
    assert_eq!(loaded.tensors["f32"].to_vec::<f32>().unwrap(), data(1, 12));
}

#[test]
fn struct_methods_empty_metadata_and_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.safetensors");
    let mut st = SafeTensors::default();
    st.tensors.insert("w".into(), arr(&data(3, 6), &[2, 3]));
    st.save(&path).unwrap();
    let back = SafeTensors::load(&path).unwrap();
    assert!(back.metadata.is_empty());
    assert_same(&back.tensors["w"], &st.tensors["w"], "w");

    // Overwriting replaces the file's contents.
    let mut st2 = SafeTensors::default();
    st2.tensors
        .insert("other".into(), Array::from_slice(&[5i32], &[1]).unwrap());
    st2.metadata.insert("v".into(), "2".into());
    st2.save(&path).unwrap();
    let back = SafeTensors::load(&path).unwrap();
    assert_eq!(back.tensors.keys().collect::<Vec<_>>(), vec!["other"]);
    assert_eq!(back.metadata["v"], "2");
}

#[test]
fn saving_views_and_lazy_results_writes_their_logical_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("views.safetensors");
    let x = data(4, 12);
    let (xt, ts) = permute(&x, &[3, 4], &[1, 0]);
    let mut t = BTreeMap::new();
    t.insert("t".to_string(), arr(&x, &[3, 4]).transpose(&[]).unwrap());
    t.insert(
        "lazy".to_string(),
        arr(&x, &[3, 4])
            .mul_scalar(2.0)
            .unwrap()
            .slice_axis(1, 1, 3)
            .unwrap(),
    );
    save_safetensors(&path, &t, &BTreeMap::new()).unwrap();
    let back = load_safetensors(&path).unwrap();
    assert_eq!(back.tensors["t"].shape(), ts);
    assert_eq!(read(&back.tensors["t"]), xt);
    let want: Vec<f32> = (0..3)
        .flat_map(|r| [x[r * 4 + 1] * 2.0, x[r * 4 + 2] * 2.0])
        .collect();
    assert_eq!(back.tensors["lazy"].shape(), vec![3, 2]);
    assert_eq!(read(&back.tensors["lazy"]), want);
}

/// Extracts `"key":"value"` or `"key":[..]` text following `from` in `s`.
fn field<'a>(s: &'a str, from: usize, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let start = from + s[from..].find(&pat).expect(key) + pat.len();
    let rest = &s[start..];
    let end = if rest.starts_with('[') {
        rest.find(']').unwrap() + 1
    } else {
        rest[1..].find('"').unwrap() + 2
    };
    &rest[..end]
}

#[test]
fn written_file_has_the_safetensors_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout.safetensors");
    let tensors = sample_tensors();
    let mut metadata = BTreeMap::new();
    metadata.insert("key".to_string(), "value".to_string());
    save_safetensors(&path, &tensors, &metadata).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: String = std::str::from_utf8(&bytes[8..8 + n])
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let body = &bytes[8 + n..];
    assert!(
        header.contains("\"__metadata__\":{\"key\":\"value\"}"),
        "{header}"
    );
    let expected_dtype = |d: Dtype| match d {
        Dtype::F32 => "F32",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        Dtype::I32 => "I32",
        Dtype::U32 => "U32",
        Dtype::U8 => "U8",
        Dtype::I64 => "I64",
        Dtype::Bool => "BOOL",
        other => panic!("unexpected {other:?}"),
    };
    let mut total = 0;
    for (name, a) in &tensors {
        let at = header.find(&format!("\"{name}\":{{")).expect(name);
        assert_eq!(
            field(&header, at, "dtype"),
            format!("\"{}\"", expected_dtype(a.dtype())),
            "{name}"
        );
        let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            field(&header, at, "shape"),
            format!("[{}]", shape.join(",")),
            "{name}"
        );
        let offsets: Vec<usize> = field(&header, at, "data_offsets")
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(
            &body[offsets[0]..offsets[1]],
            &a.to_bytes().unwrap()[..],
            "{name}"
        );
        total += offsets[1] - offsets[0];
    }
    assert_eq!(
        body.len(),
        total,
        "no unaccounted bytes in the data section"
    );
}

#[test]
fn hand_written_file_is_read_correctly() {
    let a = [1.5f32, -2.0, 0.25, 8.0];
    let b = [7i32, -9, 123456];
    let c = [f16::from_f32(0.5), f16::from_f32(-3.0)];
    let mut data_bytes = Vec::new();
    data_bytes.extend(a.iter().flat_map(|v| v.to_le_bytes()));
    data_bytes.extend(b.iter().flat_map(|v| v.to_le_bytes()));
    data_bytes.extend(c.iter().flat_map(|v| v.to_le_bytes()));
    let mut header = String::from(
        r#"{"__metadata__":{"source":"hand"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"I32","shape":[3],"data_offsets":[16,28]},"c":{"dtype":"F16","shape":[1,2],"data_offsets":[28,32]}}"#,
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header.as_bytes());
    file.extend(&data_bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hand.safetensors");
    std::fs::write(&path, &file).unwrap();

    let st = load_safetensors(&path).unwrap();
    assert_eq!(st.metadata.get("source").map(String::as_str), Some("hand"));
    assert_eq!(st.tensors.len(), 3);
    assert_eq!(st.tensors["a"].shape(), vec![2, 2]);
    assert_eq!(st.tensors["a"].to_vec::<f32>().unwrap(), a);
    assert_eq!(st.tensors["b"].dtype(), Dtype::I32);
    assert_eq!(st.tensors["b"].to_vec::<i32>().unwrap(), b);
    assert_eq!(st.tensors["c"].shape(), vec![1, 2]);
    assert_eq!(st.tensors["c"].to_vec::<f16>().unwrap(), c);
    // Loaded arrays take part in computations like any other.
    let s = st.tensors["a"]
        .sum(&[], false)
        .unwrap()
        .item::<f32>()
        .unwrap();
    assert_eq!(s, a.iter().sum::<f32>());
}
