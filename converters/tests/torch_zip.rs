//! PyTorch zip checkpoints built opcode by opcode (the layout `torch.save`
//! writes), so every expected value is known by construction.

use std::io::Write;
use std::path::{Path, PathBuf};

use asr_converters::torch::read_checkpoint;
use asr_converters::{ConvertError, TensorDtype};

/// Emits protocol-2 pickle opcodes.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend(bytes);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.op(b"X")
            .op(&(s.len() as u32).to_le_bytes())
            .op(s.as_bytes())
    }
    /// BININT1 when it fits, else LONG1 with 8 bytes.
    fn int(&mut self, n: u64) -> &mut Self {
        match u8::try_from(n) {
            Ok(small) => self.op(&[b'K', small]),
            Err(_) => self.op(&[0x8a, 8]).op(&n.to_le_bytes()),
        }
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b"c")
            .op(module.as_bytes())
            .op(b"\n")
            .op(name.as_bytes())
            .op(b"\n")
    }
    fn tuple(&mut self, items: &[u64]) -> &mut Self {
        self.op(b"(");
        for &i in items {
            self.int(i);
        }
        self.op(b"t")
    }
    /// `_rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())`.
    fn tensor(
        &mut self,
        storage: &str,
        kind: &str,
        numel: u64,
        offset: u64,
        size: &[u64],
        stride: &[u64],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b"(");
        self.op(b"(")
            .str("storage")
            .global("torch", kind)
            .str(storage)
            .str("cpu")
            .int(numel)
            .op(b"tQ");
        self.int(offset).tuple(size).tuple(stride).op(b"\x89");
        self.global("collections", "OrderedDict").op(b")R");
        self.op(b"tR")
    }
}

fn write_zip(dir: &Path, pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> PathBuf {
    let entries: Vec<(String, &[u8])> = storages
        .iter()
        .map(|(key, bytes)| (format!("data/{key}"), bytes.as_slice()))
        .collect();
    write_archive(dir, pickle, &entries)
}

/// A zip with `archive/data.pkl` and `archive/<name>` for each entry.
fn write_archive(dir: &Path, pickle: &[u8], entries: &[(String, &[u8])]) -> PathBuf {
    let path = dir.join("model.pt");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    for (name, bytes) in entries {
        zip.start_file(format!("archive/{name}"), stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn strided_offset_and_shared_storage_views_are_materialized() {
    // storage "0" = [0, 1, 2, 3, 4] (f32), storage "1" = [7, 8] (i64).
    let mut p = Pickle::default();
    p.op(b"\x80\x02")
        .global("collections", "OrderedDict")
        .op(b")R")
        .op(b"(");
    // A transposed 2x2 view starting at element 1: [[s1, s3], [s2, s4]].
    p.str("layer.w")
        .tensor("0", "FloatStorage", 5, 1, &[2, 2], &[1, 2]);
    // The first three elements of the same storage.
    p.str("layer.v")
        .tensor("0", "FloatStorage", 5, 0, &[3], &[1]);
    p.str("steps").tensor("1", "LongStorage", 2, 0, &[2], &[1]);
    p.op(b"u.");
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(
        dir.path(),
        &p.0,
        &[
            ("0", f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0])),
            (
                "1",
                [7i64, 8].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ],
    );
    let tensors = read_checkpoint(&path).unwrap().state_dict();
    let w = &tensors["layer.w"];
    assert_eq!((w.dtype, w.shape.clone()), (TensorDtype::F32, vec![2, 2]));
    assert_eq!(w.to_f32(), vec![1.0, 3.0, 2.0, 4.0]);
    assert_eq!(tensors["layer.v"].to_f32(), vec![0.0, 1.0, 2.0]);
    assert_eq!(tensors["steps"].dtype, TensorDtype::I64);
    assert_eq!(tensors["steps"].to_f32(), vec![7.0, 8.0]);
}

#[test]
fn nested_state_dict_under_model_state_dict_is_found() {
    let mut p = Pickle::default();
    p.op(b"\x80\x02}(")
        .str("dims")
        .op(b"}(")
        .str("n_mels")
        .int(80)
        .op(b"u");
    p.str("model_state_dict")
        .op(b"}(")
        .str("a")
        .tensor("0", "HalfStorage", 1, 0, &[1], &[1])
        .op(b"uu.");
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(dir.path(), &p.0, &[("0", vec![0x00, 0x3c])]);
    let ckpt = read_checkpoint(&path).unwrap();
    let sd = ckpt.state_dict();
    assert_eq!(sd.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(sd["a"].to_f32(), vec![1.0]);
}

fn expect_error(path: &Path, needle: &str) {
    let err = read_checkpoint(path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConvertError::Format { .. }), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains(needle),
        "expected '{needle}' in: {msg}"
    );
}

#[test]
fn globals_outside_the_allow_list_are_refused_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    for (module, name) in [
        ("os", "system"),
        ("builtins", "eval"),
        ("posix", "system"),
        ("subprocess", "call"),
    ] {
        let mut p = Pickle::default();
        p.op(b"\x80\x02")
            .global(module, name)
            .str(&format!("touch {}", marker.display()))
            .op(b"\x85R.");
        let path = write_zip(dir.path(), &p.0, &[]);
        expect_error(&path, &format!("refused pickle global {module}.{name}"));
    }
    assert!(!marker.exists(), "nothing was executed");
}

#[test]
fn views_outside_their_storage_are_errors() {
    let mut p = Pickle::default();
    p.op(b"\x80\x02}(")
        .str("w")
        .tensor("0", "FloatStorage", 4, 2, &[2, 2], &[2, 1])
        .op(b"u.");
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(dir.path(), &p.0, &[("0", f32_bytes(&[0.0; 4]))]);
    expect_error(&path, "view reaches element 5 of a 4-element storage");
    let path = write_zip(dir.path(), &p.0, &[("0", f32_bytes(&[0.0; 2]))]);
    expect_error(&path, "storage has 2 elements, expected 4");
}

#[test]
fn legacy_truncated_and_foreign_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy.pt");
    // A pickle, but with a magic number torch.save never wrote.
    std::fs::write(&legacy, b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    expect_error(&legacy, "legacy checkpoint: no torch magic number");

    let mut p = Pickle::default();
    p.op(b"\x80\x02}(")
        .str("w")
        .tensor("0", "FloatStorage", 1, 0, &[1], &[1])
        .op(b"u.");
    let good = std::fs::read(write_zip(dir.path(), &p.0, &[("0", f32_bytes(&[1.0]))])).unwrap();
    let truncated = dir.path().join("truncated.pt");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    expect_error(&truncated, "corrupt zip archive");

    let cut_pickle = write_zip(
        dir.path(),
        &p.0[..p.0.len() - 3],
        &[("0", f32_bytes(&[1.0]))],
    );
    expect_error(&cut_pickle, "data.pkl");

    let text = dir.path().join("notes.pt");
    std::fs::write(&text, "hello").unwrap();
    expect_error(&text, "not a PyTorch checkpoint (zip or legacy)");
}

#[test]
fn sizes_past_the_address_space_are_errors() {
    for (size, stride, needle) in [
        // 2^40 × 2^40 elements cannot be counted in 64 bits.
        (&[1 << 40, 1 << 40][..], &[0, 0][..], "too many elements"),
        // 2^62 elements fit, their bytes (× 4) do not.
        (&[1 << 62][..], &[0][..], "too many bytes"),
        // The view's last element is past 2^64.
        (&[5, 3][..], &[1 << 62, 1][..], "beyond any storage"),
    ] {
        let mut p = Pickle::default();
        p.op(b"\x80\x02}(")
            .str("w")
            .tensor("0", "FloatStorage", 1, 0, size, stride)
            .op(b"u.");
        let dir = tempfile::tempdir().unwrap();
        let path = write_zip(dir.path(), &p.0, &[("0", f32_bytes(&[1.0]))]);
        expect_error(&path, needle);
    }
}

#[test]
fn big_endian_checkpoints_are_byte_swapped() {
    let mut p = Pickle::default();
    p.op(b"\x80\x02}(")
        .str("f")
        .tensor("0", "FloatStorage", 2, 0, &[2], &[1])
        .str("s")
        .tensor("1", "ShortStorage", 1, 0, &[1], &[1])
        .op(b"u.");
    let f: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let s = (-300i16).to_be_bytes();
    let dir = tempfile::tempdir().unwrap();
    let mut entries = vec![
        ("data/0".to_string(), f.as_slice()),
        ("data/1".to_string(), s.as_slice()),
        ("byteorder".to_string(), b"big".as_slice()),
    ];
    let tensors = read_checkpoint(&write_archive(dir.path(), &p.0, &entries))
        .unwrap()
        .state_dict();
    assert_eq!(tensors["f"].to_f32(), vec![1.5, -2.0]);
    assert_eq!(tensors["s"].scalar_i64(), Some(-300));
    entries[2].1 = b"middle";
    let path = write_archive(dir.path(), &p.0, &entries);
    expect_error(&path, "unknown byte order \"middle\"");
}

#[test]
fn two_tensors_with_one_dotted_name_are_an_error() {
    // {"a.b": t, "a": {"b": t}} would silently lose one tensor.
    let mut p = Pickle::default();
    p.op(b"\x80\x02}(")
        .str("a.b")
        .tensor("0", "FloatStorage", 1, 0, &[1], &[1])
        .str("a")
        .op(b"}(")
        .str("b")
        .tensor("0", "FloatStorage", 1, 0, &[1], &[1])
        .op(b"uu.");
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(dir.path(), &p.0, &[("0", f32_bytes(&[1.0]))]);
    expect_error(&path, "two tensors are both named a.b");
}
