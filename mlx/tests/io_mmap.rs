//! safetensors read (`load_safetensors`) and mapped into memory
//! (`map_safetensors`): both hold the file's bytes for every dtype; mapped
//! arrays read them in place, outlive both the returned struct and the
//! file's name, and never write to the file; a broken file is an error
//! naming it.

use std::fs;
use std::path::{Path, PathBuf};

use mlx::io::{load_safetensors, map_safetensors};
use mlx::{Array, Dtype, Error};

/// One tensor of a hand-written file: name, safetensors dtype, shape, bytes.
struct Tensor {
    name: &'static str,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// `n` deterministic bytes, different for each `seed`.
fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u8)
                .wrapping_mul(37)
                .wrapping_add(seed.wrapping_mul(11))
        })
        .collect()
}

fn tensor(name: &'static str, dtype: &'static str, shape: &[usize], elem: usize) -> Tensor {
    let n = shape.iter().product::<usize>() * elem;
    Tensor {
        name,
        dtype,
        shape: shape.to_vec(),
        bytes: bytes(name.len() as u8 + dtype.len() as u8, n),
    }
}

/// Every dtype MLX reads, largest elements first so that each starts at a
/// multiple of its size; then an `f32` tensor that does not (the bytes before
/// it sum to 191) and an empty one.
fn all_dtypes() -> Vec<Tensor> {
    let mut t = vec![
        tensor("f64", "F64", &[3], 8),
        tensor("c64", "C64", &[2], 8),
        tensor("i64", "I64", &[2], 8),
        tensor("u64", "U64", &[2], 8),
        tensor("f32", "F32", &[3, 4], 4),
        tensor("i32", "I32", &[4], 4),
        tensor("u32", "U32", &[3], 4),
        tensor("f16", "F16", &[2, 3], 2),
        tensor("bf16", "BF16", &[5], 2),
        tensor("i16", "I16", &[3], 2),
        tensor("u16", "U16", &[3], 2),
        tensor("u8", "U8", &[3], 1),
        tensor("i8", "I8", &[2], 1),
        tensor("bool", "BOOL", &[2], 1),
        tensor("f8", "F8_E4M3", &[2], 1),
        tensor("misaligned_f32", "F32", &[2], 4),
        tensor("empty", "F32", &[0, 3], 4),
    ];
    // A bool byte must be 0 or 1.
    let bools = t.iter_mut().find(|t| t.name == "bool").unwrap();
    bools.bytes = vec![1, 0];
    t
}

/// Writes a safetensors file by hand; returns each tensor's offset in the
/// whole file.
fn write(path: &Path, tensors: &[Tensor]) -> Vec<usize> {
    let mut entries = vec![r#""__metadata__":{"format":"test"}"#.to_string()];
    let mut begin = 0;
    for t in tensors {
        let end = begin + t.bytes.len();
        entries.push(format!(
            r#""{}":{{"dtype":"{}","shape":{:?},"data_offsets":[{begin},{end}]}}"#,
            t.name, t.dtype, t.shape
        ));
        begin = end;
    }
    let mut header = format!("{{{}}}", entries.join(","));
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    let mut offsets = Vec::new();
    for t in tensors {
        offsets.push(file.len());
        file.extend_from_slice(&t.bytes);
    }
    fs::write(path, file).unwrap();
    offsets
}

fn written(dir: &tempfile::TempDir) -> (PathBuf, Vec<Tensor>, Vec<usize>) {
    let path = dir.path().join("weights.safetensors");
    let tensors = all_dtypes();
    let offsets = write(&path, &tensors);
    (path, tensors, offsets)
}

fn dims(shape: &[usize]) -> Vec<i32> {
    shape.iter().map(|&d| d as i32).collect()
}

#[test]
fn mapped_and_read_arrays_hold_the_files_bytes_for_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    let tensors = all_dtypes();
    write(&path, &tensors);
    let mapped = map_safetensors(&path).unwrap();
    let loaded = load_safetensors(&path).unwrap();
    assert_eq!(mapped.tensors.len(), tensors.len());
    assert_eq!(mapped.metadata, loaded.metadata);
    assert_eq!(mapped.metadata["format"], "test");
    for t in &tensors {
        let (m, l) = (&mapped.tensors[t.name], &loaded.tensors[t.name]);
        assert_eq!(m.dtype(), l.dtype(), "{}", t.name);
        assert_eq!(m.shape(), dims(&t.shape), "{}", t.name);
        assert_eq!(l.shape(), dims(&t.shape), "{}", t.name);
        assert_eq!(m.to_bytes().unwrap(), t.bytes, "{}", t.name);
        assert_eq!(l.to_bytes().unwrap(), t.bytes, "{}", t.name);
    }
    let dtype = |name: &str| mapped.tensors[name].dtype();
    assert_eq!(dtype("f8"), Dtype::U8);
    assert_eq!(dtype("f64"), Dtype::F64);
    assert_eq!(dtype("c64"), Dtype::Complex64);
}

#[test]
fn aligned_tensors_are_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (path, tensors, offsets) = written(&dir);
    let mapped = map_safetensors(&path).unwrap();
    let address = |name: &str| mapped.tensors[name].data_address().unwrap();
    // Every in-place tensor lies at one base plus its offset in the file, and
    // that base is page-aligned: the start of the mapping. Copies would lie
    // wherever the allocator put them.
    let base = address("f64") - offsets[0];
    assert_eq!(base % 4096, 0, "mapping base {base:#x}");
    for (t, &offset) in tensors.iter().zip(&offsets) {
        if t.name == "misaligned_f32" || t.name == "empty" {
            continue;
        }
        assert_eq!(address(t.name), base + offset, "{} not in place", t.name);
    }
    let i = tensors
        .iter()
        .position(|t| t.name == "misaligned_f32")
        .unwrap();
    assert_eq!(offsets[i] % 4, 3);
    assert_ne!(address("misaligned_f32"), base + offsets[i]);
    assert_eq!(address("misaligned_f32") % 4, 0, "the copy is aligned");
}

#[test]
fn arrays_outlive_the_struct_and_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let (path, tensors, _) = written(&dir);
    let mut mapped = map_safetensors(&path).unwrap();
    let f32s = mapped.tensors.remove("f32").unwrap();
    let i32s = mapped.tensors.remove("i32").unwrap();
    drop(mapped);
    let moved = dir.path().join("moved.safetensors");
    fs::rename(&path, &moved).unwrap();
    fs::remove_file(&moved).unwrap();

    let expect = |name| tensors.iter().find(|t| t.name == name).unwrap();
    let values: Vec<f32> = expect("f32")
        .bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let sum = f32s.sum(&[], false).unwrap().item::<f32>().unwrap();
    assert_eq!(sum, values.iter().sum::<f32>());
    assert_eq!(i32s.to_bytes().unwrap(), expect("i32").bytes);
}

#[test]
fn writes_to_a_mapped_buffer_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let values: Vec<f32> = (0..1024).map(|i| i as f32 * 0.5 - 7.0).collect();
    let t = Tensor {
        name: "w",
        dtype: "F32",
        shape: vec![1024],
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    // MLX reuses a buffer only when the size it finds in the word before it
    // (here the tensor before, see shim.cc) is not much larger than needed.
    let zero = Tensor {
        name: "zero",
        dtype: "U64",
        shape: vec![1],
        bytes: vec![0; 8],
    };
    let offsets = write(&path, &[zero, t]);
    let before = fs::read(&path).unwrap();

    let mut mapped = map_safetensors(&path).unwrap();
    let w = mapped.tensors.remove("w").unwrap();
    drop(mapped);
    let in_place = w.data_address().unwrap();
    assert_eq!(in_place % 4096, offsets[1]);
    // Nothing else holds `w`, so MLX writes the product into its buffer.
    let doubled = w.mul_scalar(2.0).unwrap();
    drop(w);
    doubled.eval().unwrap();
    assert_eq!(doubled.data_address().unwrap(), in_place);
    let expect: Vec<f32> = values.iter().map(|v| v * 2.0).collect();
    assert_eq!(doubled.to_vec::<f32>().unwrap(), expect);

    assert_eq!(fs::read(&path).unwrap(), before);
    let again = map_safetensors(&path).unwrap();
    assert_eq!(again.tensors["w"].to_vec::<f32>().unwrap(), values);
}

/// The message of a file error, which must name `path`.
fn file_error(path: &Path, result: mlx::Result<mlx::io::SafeTensors>) -> String {
    match result {
        Err(Error::File { path: p, message }) => {
            assert_eq!(p, path.display().to_string());
            message
        }
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn broken_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = written(&dir);
    let full = fs::read(&path).unwrap();

    let truncated = dir.path().join("truncated.safetensors");
    fs::write(&truncated, &full[..full.len() - 4]).unwrap();
    let message = file_error(&truncated, map_safetensors(&truncated));
    assert!(message.contains("incomplete"), "{message}");

    let bad_json = dir.path().join("bad_json.safetensors");
    let mut file = 8u64.to_le_bytes().to_vec();
    file.extend_from_slice(b"not json");
    fs::write(&bad_json, file).unwrap();
    let message = file_error(&bad_json, map_safetensors(&bad_json));
    assert!(message.contains("JSON"), "{message}");

    let empty = dir.path().join("empty.safetensors");
    fs::write(&empty, []).unwrap();
    let message = file_error(&empty, map_safetensors(&empty));
    assert!(message.contains("header"), "{message}");

    let short = dir.path().join("short.safetensors");
    fs::write(&short, [1, 2, 3]).unwrap();
    let message = file_error(&short, map_safetensors(&short));
    assert!(message.contains("header"), "{message}");

    let header_past_end = dir.path().join("header_past_end.safetensors");
    fs::write(&header_past_end, 4096u64.to_le_bytes()).unwrap();
    let message = file_error(&header_past_end, map_safetensors(&header_past_end));
    assert!(message.contains("header"), "{message}");

    let unsupported = dir.path().join("unsupported.safetensors");
    write(&unsupported, &[tensor("f8_e5m2", "F8_E5M2", &[4], 1)]);
    let message = file_error(&unsupported, map_safetensors(&unsupported));
    assert!(
        message.contains("f8_e5m2") && message.contains("F8_E5M2"),
        "{message}"
    );

    let missing = dir.path().join("missing.safetensors");
    file_error(&missing, map_safetensors(&missing));
}

#[test]
fn a_mapped_matrix_multiplies_like_a_loaded_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let values: Vec<f32> = (0..64 * 48)
        .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let m = Tensor {
        name: "m",
        dtype: "F32",
        shape: vec![64, 48],
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    write(&path, std::slice::from_ref(&m));
    let x = Array::from_slice(
        &(0..3 * 64).map(|i| i as f32 / 100.0).collect::<Vec<_>>(),
        &[3, 64],
    )
    .unwrap();
    let mapped = map_safetensors(&path).unwrap().tensors["m"].clone();
    let loaded = load_safetensors(&path).unwrap().tensors["m"].clone();
    let a = x.matmul(&mapped).unwrap().to_vec::<f32>().unwrap();
    let b = x.matmul(&loaded).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}

#[test]
fn saved_files_are_read_wholly_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved.safetensors");
    // Names in an order that would misalign the larger elements after the
    // odd-sized byte tensor if written as sorted.
    let mut tensors = std::collections::BTreeMap::new();
    tensors.insert(
        "a_u8".to_string(),
        Array::from_slice(&[1u8, 2, 3], &[3]).unwrap(),
    );
    tensors.insert("b_bool".into(), Array::from_slice(&[true], &[1]).unwrap());
    tensors.insert(
        "c_f16".into(),
        Array::from_slice(&[half::f16::ONE; 3], &[3]).unwrap(),
    );
    tensors.insert(
        "d_f32".into(),
        Array::from_slice(&[1.5f32, -2.0, 4.0], &[3]).unwrap(),
    );
    tensors.insert(
        "e_i64".into(),
        Array::from_slice(&[-5i64, 7], &[2]).unwrap(),
    );
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("format".to_string(), "mlx".to_string());
    mlx::io::save_safetensors(&path, &tensors, &metadata).unwrap();

    let bytes = fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "header padded to 8 bytes");
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mapped = map_safetensors(&path).unwrap();
    assert_eq!(mapped.metadata, metadata);
    let start = |name: &str| 8 + n + header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let base = mapped.tensors["e_i64"].data_address().unwrap() - start("e_i64");
    assert_eq!(base % 4096, 0);
    for (name, a) in &tensors {
        let m = &mapped.tensors[name];
        assert_eq!(
            m.data_address().unwrap(),
            base + start(name),
            "{name} not in place"
        );
        assert_eq!(m.to_bytes().unwrap(), a.to_bytes().unwrap(), "{name}");
    }
}

#[test]
fn huge_pages_move_a_mapped_array_into_its_own_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let mut tensors = std::collections::BTreeMap::new();
    tensors.insert(
        "w".to_string(),
        mlx::random::normal(&[2048, 1024], Dtype::F32, 3).unwrap(),
    );
    mlx::io::save_safetensors(&path, &tensors, &Default::default()).unwrap();
    let expect = tensors["w"].to_bytes().unwrap();

    let mapped = map_safetensors(&path).unwrap();
    let w = mapped.tensors["w"].clone();
    let in_place = w.data_address().unwrap();
    assert_eq!(in_place, mapped.tensors["w"].data_address().unwrap());
    // Whether the OS grants huge pages depends on its settings.
    println!("collapsed: {}", w.prefer_huge_pages().unwrap());
    let moved = w.data_address().unwrap();
    assert_ne!(moved, in_place);
    assert_eq!(
        mapped.tensors["w"].data_address().unwrap(),
        moved,
        "clones move too"
    );
    drop(mapped);
    assert_eq!(w.to_bytes().unwrap(), expect);
}
