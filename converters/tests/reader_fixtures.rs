//! The readers against files the reference libraries wrote
//! (scripts/make_reader_fixtures.py): every tensor must equal, dtype, shape
//! and bytes, the sidecar the script wrote with safetensors from the same
//! tensors made contiguous (or, for CTranslate2, from the variables as
//! ctranslate2 serialized them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_converters::ct2::read_model_dir;
use asr_converters::pickle::Value;
use asr_converters::safetensors::read_safetensors;
use asr_converters::torch::read_checkpoint;
use asr_converters::{load_state_dict, ConvertError, RawTensor, TensorDtype};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/readers")
        .join(name)
}

fn assert_same(what: &str, got: &BTreeMap<String, RawTensor>, want: &BTreeMap<String, RawTensor>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: tensor names"
    );
    for (name, w) in want {
        let g = &got[name];
        assert_eq!(
            (g.dtype, &g.shape),
            (w.dtype, &w.shape),
            "{what}: {name} dtype/shape"
        );
        assert!(g.data == w.data, "{what}: {name} values differ");
    }
}

#[test]
fn torch_zip_with_every_dtype_and_view_matches_torch_exactly() {
    let ckpt = read_checkpoint(&fixture("torch/mixed.pt")).unwrap();
    let want = read_safetensors(&fixture("torch/mixed.expected.safetensors")).unwrap();
    assert_same("mixed.pt", &ckpt.tensors_under(""), &want);
    let dtypes: Vec<TensorDtype> = ckpt
        .tensors_under("dtypes")
        .values()
        .map(|t| t.dtype)
        .collect();
    assert_eq!(dtypes.len(), 10, "one tensor per storage dtype");
    // Views that torch stores strided, offset, with stride 0, or sharing a storage.
    let views = ckpt.tensors_under("views");
    assert_eq!(views["transposed"].shape, vec![5, 4]);
    assert_eq!(
        views["expanded"].to_f32(),
        vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    );
    assert_eq!(
        views["shared_b"].to_f32(),
        vec![4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    );
    assert_eq!(views["scalar"].shape, Vec::<usize>::new());
}

#[test]
fn state_dict_is_found_under_model_and_the_value_tree_is_complete() {
    let ckpt = read_checkpoint(&fixture("torch/mixed.pt")).unwrap();
    // The top level holds a `model` dict (a module's state_dict with
    // `_metadata`, set through BUILD): that is the state dict.
    assert_eq!(
        ckpt.state_dict().keys().collect::<Vec<_>>(),
        vec!["0.bias", "0.weight", "1.bias", "1.weight"]
    );
    let plain = ckpt.root.get("plain").unwrap();
    let expect = [
        ("int", Value::Int(7)),
        ("neg", Value::Int(-3)),
        ("big", Value::Int(1 << 40)),
        ("float", Value::Float(0.25)),
        ("str", Value::Str("héllo".into())),
        ("bytes", Value::Bytes(vec![0, 255])),
        ("none", Value::None),
        ("true", Value::Bool(true)),
        ("list", Value::List(vec![Value::Int(1), Value::Int(2)])),
        (
            "tuple",
            Value::Tuple(vec![Value::Int(1), Value::Str("a".into())]),
        ),
        ("set", Value::List(vec![Value::Int(3)])),
        ("size", Value::Tuple(vec![Value::Int(4), Value::Int(5)])),
    ];
    for (key, value) in expect {
        assert_eq!(plain.get(key), Some(&value), "plain.{key}");
    }
    // One dict object saved under two keys: pickle memoizes it while empty
    // and refers back to it; both places must show its items.
    let first = ckpt.root.get("first").unwrap();
    assert!(matches!(first.get("w"), Some(Value::Tensor(_))));
    assert_eq!(ckpt.root.get("second"), Some(first));
}

#[test]
fn sharded_torch_and_safetensors_checkpoints_match_their_tensors() {
    let want = read_safetensors(&fixture("sharded.expected.safetensors")).unwrap();
    for index in [
        "sharded-bin/pytorch_model.bin.index.json",
        "sharded-safetensors/model.safetensors.index.json",
    ] {
        assert_same(index, &load_state_dict(&fixture(index)).unwrap(), &want);
    }
    // A single shard reads on its own too, by content.
    let shard = load_state_dict(&fixture("sharded-bin/pytorch_model-00002-of-00002.bin")).unwrap();
    assert_eq!(shard.len(), 3);
}

#[test]
fn ctranslate2_models_in_every_quantization_match_ctranslate2() {
    for quantization in [
        "float32",
        "float16",
        "bfloat16",
        "int8",
        "int8_float16",
        "int16",
    ] {
        let dir = fixture(&format!("ct2-{quantization}"));
        let folder = read_model_dir(&dir).unwrap();
        assert_eq!(
            (folder.model.spec_name.as_str(), folder.model.revision),
            ("ReaderTestSpec", 2)
        );
        assert_eq!(folder.config["note"], "reader fixture");
        let want = read_safetensors(&dir.join("expected.safetensors")).unwrap();
        assert_same(quantization, &folder.model.variables, &want);
        let vars = &folder.model.variables;
        // The alias carries its target's dequantized values.
        assert_eq!(vars["model/tied/weight"], vars["model/embeddings/weight"]);
        assert_eq!(vars["model/num_heads"].scalar_i64(), Some(4));
        let stored = match quantization {
            "float16" => TensorDtype::F16,
            "bfloat16" => TensorDtype::BF16,
            _ => TensorDtype::F32, // dequantized or stored so
        };
        assert_eq!(vars["model/layer_0/weight"].dtype, stored, "{quantization}");
    }
}

#[test]
fn legacy_torch_files_hold_what_the_zip_format_holds() {
    // mixed-legacy.pt is mixed.pt's object tree (views, shared storages,
    // f16/bf16, int keys, ...) saved by torch with
    // `_use_new_zipfile_serialization=False`.
    let ckpt = read_checkpoint(&fixture("torch/mixed-legacy.pt")).unwrap();
    let want = read_safetensors(&fixture("torch/mixed.expected.safetensors")).unwrap();
    assert_same("mixed-legacy.pt", &ckpt.tensors_under(""), &want);
    // The plain values too (storage keys differ: indices in a zip, object
    // addresses in the legacy format).
    let zip = read_checkpoint(&fixture("torch/mixed.pt")).unwrap();
    assert_eq!(ckpt.root.get("plain"), zip.root.get("plain"));
    assert!(ckpt.root.get("plain").is_some());

    let small = read_checkpoint(&fixture("torch/legacy.pt")).unwrap();
    let w = &small.tensors_under("")["w"];
    assert_eq!(w.shape, vec![2]);
    assert_eq!(
        w.data,
        [1.0f32, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_legacy_training_checkpoint_gives_its_model_and_skips_the_optimizer() {
    // As resemblyzer's pretrained.pt: {"step", "model_state", "optimizer_state"}.
    let ckpt = read_checkpoint(&fixture("torch/legacy-training.pt")).unwrap();
    let names: Vec<_> = ckpt.tensors_under("").into_keys().collect();
    assert_eq!(
        names,
        [
            "model_state.0.bias",
            "model_state.0.weight",
            "model_state.1.bias",
            "model_state.1.weight"
        ]
    );
    let state = ckpt.state_dict();
    assert_eq!(state["0.weight"].shape, vec![3, 4]);
    assert_eq!(state["1.weight"].shape, vec![2, 3]);
    assert_eq!(ckpt.root.get("step"), Some(&Value::Int(3)));
    // The optimizer's entry is read (it is in the tree) but not materialized.
    assert!(matches!(
        ckpt.root.get("optimizer_state"),
        Some(Value::Dict(_))
    ));
}

#[test]
fn cut_legacy_files_name_what_is_missing() {
    let bytes = std::fs::read(fixture("torch/legacy-training.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (cut, needle) in [
        (bytes.len() - 3, "truncated"),
        (40, "legacy checkpoint: system info"),
        (200, "legacy checkpoint: object tree"),
    ] {
        let path = dir.path().join(format!("cut-{cut}.pt"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let msg = read_checkpoint(&path).unwrap_err().to_string();
        assert!(
            msg.contains(path.to_str().unwrap()) && msg.contains(needle),
            "cut at {cut}: expected '{needle}' in: {msg}"
        );
    }
}

#[test]
fn malicious_torch_files_are_refused_and_nothing_runs() {
    let expect_error = |name: &str, needle: &str| {
        let path = fixture(name);
        let err = load_state_dict(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConvertError::Format { .. }), "{msg}");
        assert!(
            msg.contains(path.to_str().unwrap()) && msg.contains(needle),
            "expected '{needle}' in: {msg}"
        );
    };
    // os.system pickles as posix.system; Python 3's eval as __builtin__.eval
    // in protocol 2.
    expect_error("torch/evil-system.pt", "refused pickle global posix.system");
    expect_error(
        "torch/evil-eval.pt",
        "refused pickle global __builtin__.eval",
    );
    let marker = Path::new("pwned-by-pickle");
    assert!(!marker.exists(), "a pickle command ran");
}
