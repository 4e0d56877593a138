//! Parakeet conversions of the tiny random models that
//! scripts/make_parakeet_checkpoints.py saves: a hybrid TDT + CTC model in
//! NeMo's `.nemo` and in mlx-community's layout, and a CTC model made by
//! transformers, as NeMo saves it and as parakeet-mlx loads it. Every source
//! of one model must give the same folder, whose tensors are parakeet-mlx's
//! own, and bad inputs are refused naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use asr_converters::out_folder::convert_into_folder;
use asr_converters::parakeet::convert_parakeet;
use asr_converters::whisper::OutputDtype;
use asr_converters::whisper::WeightOptions;
use asr_models::parakeet::ParakeetConfig;
use asr_models::quantization::Quantization;
use mlx::quant::QuantizedMatrix;
use mlx::{Array, Dtype};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parakeet")
}

fn mlx_community() -> PathBuf {
    fixtures().join("mlx-community")
}

fn nemo() -> PathBuf {
    fixtures().join("tiny.nemo")
}

/// Converts `from` into a new folder under `dir` named `name`.
fn convert(from: &Path, dir: &Path, name: &str, opts: WeightOptions) -> Result<PathBuf, String> {
    let out = dir.join(name);
    convert_into_folder(from, &out, false, |from, staged| {
        convert_parakeet(from, staged, &opts)
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// [`convert`] with the default options, which must succeed.
fn convert_f32(from: &Path, dir: &Path, name: &str) -> PathBuf {
    convert(from, dir, name, WeightOptions::default()).unwrap()
}

fn tensors(path: &Path) -> BTreeMap<String, Array> {
    mlx::io::load_safetensors(path).unwrap().tensors
}

fn config(folder: &Path) -> ParakeetConfig {
    serde_json::from_str(&fs::read_to_string(folder.join("config.json")).unwrap()).unwrap()
}

/// The elements as bytes, for exact comparison of any dtype.
fn bytes(a: &Array) -> Vec<u8> {
    match a.dtype() {
        Dtype::F32 => a
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        Dtype::U32 => a
            .to_vec::<u32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

fn assert_same_tensors(a: &BTreeMap<String, Array>, b: &BTreeMap<String, Array>) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "tensor names differ"
    );
    for (name, x) in a {
        let y = &b[name];
        assert_eq!(x.dtype(), y.dtype(), "{name}: dtype");
        assert_eq!(x.shape(), y.shape(), "{name}: shape");
        assert!(bytes(x) == bytes(y), "{name}: values differ");
    }
}

#[test]
fn nemo_and_mlx_community_give_the_same_folder_of_parakeet_mlx_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let from_nemo = convert_f32(&nemo(), dir.path(), "nemo");
    let from_mlx = convert_f32(&mlx_community(), dir.path(), "mlx");
    let reference = tensors(&mlx_community().join("model.safetensors"));
    let nemo_tensors = tensors(&from_nemo.join("weights.safetensors"));
    // The LSTM biases are sums of NeMo's two, which need not be bit-exact.
    for (name, x) in &nemo_tensors {
        if name.ends_with(".bias") && name.contains(".dec_rnn.lstm.") {
            let want = reference[name].to_vec::<f32>().unwrap();
            let diff = x
                .to_vec::<f32>()
                .unwrap()
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-6, "{name}: off by {diff}");
        }
    }
    let without_lstm_bias = |t: &BTreeMap<String, Array>| -> BTreeMap<String, Array> {
        t.iter()
            .filter(|(n, _)| !(n.ends_with(".bias") && n.contains(".dec_rnn.lstm.")))
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect()
    };
    assert_same_tensors(&tensors(&from_mlx.join("weights.safetensors")), &reference);
    assert_same_tensors(
        &without_lstm_bias(&nemo_tensors),
        &without_lstm_bias(&reference),
    );
    assert_eq!(
        nemo_tensors.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    let config = config(&from_nemo);
    assert_eq!(config, self::config(&from_mlx));
    assert_eq!(config.quantization, None);
    assert_eq!(config.encoder.n_layers, 2);
    assert!(config.aux_ctc.is_some());
}

#[test]
fn an_uncompressed_nemo_tar_reads_as_the_gzipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(nemo()).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let plain = dir.path().join("plain.nemo");
    fs::write(&plain, tar).unwrap();
    let a = convert_f32(&plain, dir.path(), "plain");
    let b = convert_f32(&nemo(), dir.path(), "gz");
    assert_same_tensors(
        &tensors(&a.join("weights.safetensors")),
        &tensors(&b.join("weights.safetensors")),
    );
}

#[test]
fn q8_quantizes_exactly_the_linear_weights_whose_rows_fill_groups() {
    let dir = tempfile::tempdir().unwrap();
    let q = Quantization {
        group_size: 32,
        bits: 8,
    };
    let opts = WeightOptions {
        dtype: OutputDtype::F32,
        quantization: Some(q),
    };
    let out = convert(&mlx_community(), dir.path(), "q8", opts).unwrap();
    assert_eq!(config(&out).quantization, Some(q));
    let written = tensors(&out.join("weights.safetensors"));
    let reference = tensors(&mlx_community().join("model.safetensors"));
    let quantized: Vec<&str> = written
        .keys()
        .filter_map(|n| n.strip_suffix(".scales"))
        .collect();
    // In-dims: attention and feed-forward 32 or 64, the joint's encoder
    // projection 32; the subsampling output (16), the joint's prediction
    // projection (16) and output (24) do not fill a group of 32.
    let mut expected = vec!["joint.enc".to_string()];
    for layer in 0..2 {
        for m in [
            "feed_forward1.linear1",
            "feed_forward1.linear2",
            "feed_forward2.linear1",
            "feed_forward2.linear2",
            "self_attn.linear_k",
            "self_attn.linear_out",
            "self_attn.linear_pos",
            "self_attn.linear_q",
            "self_attn.linear_v",
        ] {
            expected.push(format!("encoder.layers.{layer}.{m}"));
        }
    }
    expected.sort();
    assert_eq!(quantized, expected);
    for prefix in &quantized {
        let name = format!("{prefix}.weight");
        let want = QuantizedMatrix::quantize(&reference[&name], 32, 8).unwrap();
        assert_eq!(written[&name].dtype(), Dtype::U32, "{name}");
        let [rows, cols] = reference[&name].shape()[..] else {
            panic!("{name} is not a matrix")
        };
        assert_eq!(written[&name].shape(), [rows, cols / 4], "{name}");
        assert_eq!(
            written[&format!("{prefix}.scales")].shape(),
            [rows, cols / 32]
        );
        assert!(bytes(&written[&name]) == bytes(&want.weight), "{name}");
        assert!(bytes(&written[&format!("{prefix}.scales")]) == bytes(&want.scales));
        assert!(bytes(&written[&format!("{prefix}.biases")]) == bytes(&want.biases));
    }
    for (name, array) in &reference {
        let prefix = name.strip_suffix(".weight").unwrap_or(name);
        if !quantized.contains(&prefix) {
            assert!(bytes(&written[name]) == bytes(array), "{name} changed");
        }
    }
    assert_eq!(written.len(), reference.len() + 2 * quantized.len());
}

/// A `.nemo`-like tar at `path` holding `members`.
fn write_tar(path: &Path, members: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.finish().unwrap();
}

/// The fixture's members, by name.
fn nemo_members() -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        fs::File::open(nemo()).unwrap(),
    ));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

fn refused(from: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let error = convert(from, dir.path(), "out", WeightOptions::default())
        .expect_err("a bad input converted");
    assert!(
        error.contains(&from.display().to_string()),
        "error does not name {}: {error}",
        from.display()
    );
    assert!(!dir.path().join("out").exists());
    error
}

#[test]
fn bad_nemo_files_are_refused_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let members = nemo_members();
    let yaml = &members["./model_config.yaml"];
    let ckpt = &members["./model_weights.ckpt"];

    let not_tar = dir.path().join("not-a-tar.nemo");
    fs::write(&not_tar, vec![b'x'; 2048]).unwrap();
    assert!(refused(&not_tar).contains("not a .nemo archive"));

    let no_ckpt = dir.path().join("no-ckpt.nemo");
    write_tar(&no_ckpt, &[("./model_config.yaml", yaml)]);
    assert!(refused(&no_ckpt).contains("no model_weights.ckpt"));

    let no_yaml = dir.path().join("no-yaml.nemo");
    write_tar(&no_yaml, &[("./model_weights.ckpt", ckpt)]);
    assert!(refused(&no_yaml).contains("no model_config.yaml"));

    let text = String::from_utf8(yaml.clone()).unwrap();
    let other = text.replace(
        "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel",
        "nemo.collections.asr.models.EncDecDiarLabelModel",
    );
    assert_ne!(other, text);
    let unsupported = dir.path().join("unsupported.nemo");
    write_tar(
        &unsupported,
        &[
            ("./model_config.yaml", other.as_bytes()),
            ("./model_weights.ckpt", ckpt),
        ],
    );
    assert!(refused(&unsupported).contains("EncDecDiarLabelModel"));

    let bad_ckpt = dir.path().join("bad-ckpt.nemo");
    write_tar(
        &bad_ckpt,
        &[
            ("./model_config.yaml", yaml),
            ("./model_weights.ckpt", b"not a torch file"),
        ],
    );
    assert!(refused(&bad_ckpt).contains("model_weights.ckpt"));

    // Two layers of weights for a config of three.
    let deeper = text.replace("n_layers: 2", "n_layers: 3");
    assert_ne!(deeper, text);
    let missing = dir.path().join("missing-layer.nemo");
    write_tar(
        &missing,
        &[
            ("./model_config.yaml", deeper.as_bytes()),
            ("./model_weights.ckpt", ckpt),
        ],
    );
    assert!(refused(&missing).contains("encoder.layers.2."));

    assert!(refused(&dir.path().join("absent.nemo")).contains("No such file"));
}

#[test]
fn an_mlx_community_folder_without_its_weights_or_with_wrong_tensors_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let no_weights = dir.path().join("no-weights");
    fs::create_dir(&no_weights).unwrap();
    fs::copy(
        mlx_community().join("config.json"),
        no_weights.join("config.json"),
    )
    .unwrap();
    assert!(refused(&no_weights).contains("no model.safetensors"));

    let extra = dir.path().join("extra");
    fs::create_dir(&extra).unwrap();
    fs::copy(
        mlx_community().join("config.json"),
        extra.join("config.json"),
    )
    .unwrap();
    let mut weights = tensors(&mlx_community().join("model.safetensors"));
    weights.insert(
        "encoder.stray".into(),
        Array::from_slice(&[1f32], &[1]).unwrap(),
    );
    mlx::io::save_safetensors(extra.join("model.safetensors"), &weights, &BTreeMap::new()).unwrap();
    assert!(refused(&extra).contains("encoder.stray"));

    // A convolution left in PyTorch's layout.
    let torch_layout = dir.path().join("torch-layout");
    fs::create_dir(&torch_layout).unwrap();
    fs::copy(
        mlx_community().join("config.json"),
        torch_layout.join("config.json"),
    )
    .unwrap();
    let mut weights = tensors(&mlx_community().join("model.safetensors"));
    let name = "encoder.layers.1.conv.depthwise_conv.weight";
    let swapped = weights[name].swapaxes(1, 2).unwrap();
    weights.insert(name.into(), swapped);
    mlx::io::save_safetensors(
        torch_layout.join("model.safetensors"),
        &weights,
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(refused(&torch_layout).contains(&format!("{name} is [32, 1, 9], expected [32, 9, 1]")));
}

#[test]
fn a_transformers_ctc_folder_and_a_ctc_nemo_convert_to_the_weights_parakeet_mlx_loads() {
    let dir = tempfile::tempdir().unwrap();
    let from_hf = convert_f32(&fixtures().join("hf-ctc"), dir.path(), "hf");
    let from_nemo = convert_f32(&fixtures().join("tiny-ctc.nemo"), dir.path(), "nemo");
    let reference_folder = fixtures().join("mlx-community-ctc");
    let from_mlx = convert_f32(&reference_folder, dir.path(), "mlx");
    let reference = tensors(&reference_folder.join("model.safetensors"));
    assert_same_tensors(&tensors(&from_hf.join("weights.safetensors")), &reference);
    assert_same_tensors(&tensors(&from_mlx.join("weights.safetensors")), &reference);
    assert_same_tensors(&tensors(&from_nemo.join("weights.safetensors")), &reference);
    assert_eq!(config(&from_nemo), config(&from_mlx));
    // The NeMo config parakeet-mlx was built from, but for the decoding
    // section, which transformers' folder does not describe.
    let (hf, mlx) = (config(&from_hf), config(&from_mlx));
    assert_eq!(hf.decoding, None);
    assert_eq!(
        ParakeetConfig {
            decoding: None,
            ..mlx
        },
        hf
    );
    assert_eq!(hf.vocabulary().len(), 12);
    assert_eq!(hf.vocabulary()[11], "▁c11");
}

#[test]
fn a_transformers_tdt_folder_converts_to_the_model_and_config_parakeet_mlx_loads() {
    let dir = tempfile::tempdir().unwrap();
    let from_hf = convert_f32(&fixtures().join("hf-tdt"), dir.path(), "hf");
    let reference_folder = fixtures().join("mlx-community-tdt");
    let from_mlx = convert_f32(&reference_folder, dir.path(), "mlx");
    let reference = tensors(&reference_folder.join("model.safetensors"));
    let hf_tensors = tensors(&from_hf.join("weights.safetensors"));
    assert_same_tensors(&tensors(&from_mlx.join("weights.safetensors")), &reference);
    // Each LSTM bias is the sum of PyTorch's two, as in the reference, but
    // summed by another library.
    for (name, x) in &hf_tensors {
        let (got, want) = (
            x.to_vec::<f32>().unwrap(),
            reference[name].to_vec::<f32>().unwrap(),
        );
        let off = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let exact = !name.contains(".dec_rnn.lstm.");
        assert!(
            if exact { off == 0.0 } else { off < 1e-6 },
            "{name}: off by {off}"
        );
        assert_eq!(x.shape(), reference[name].shape(), "{name}");
    }
    assert_eq!(hf_tensors.len(), reference.len());
    let config = config(&from_hf);
    assert_eq!(config, self::config(&from_mlx));
    assert_eq!(
        config.head(),
        Ok(asr_models::parakeet::Head::Tdt {
            durations: vec![0, 1, 2, 3, 4]
        })
    );
}

#[test]
fn a_transformers_folder_of_another_parakeet_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tdt");
    fs::create_dir(&folder).unwrap();
    for entry in fs::read_dir(fixtures().join("hf-ctc")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), folder.join(entry.file_name())).unwrap();
    }
    let text = fs::read_to_string(folder.join("config.json")).unwrap();
    fs::write(
        folder.join("config.json"),
        text.replace("\"parakeet_ctc\"", "\"parakeet_encoder\""),
    )
    .unwrap();
    assert!(refused(&folder).contains("parakeet_encoder"));
    fs::write(folder.join("config.json"), text).unwrap();
    fs::remove_file(folder.join("tokenizer.json")).unwrap();
    assert!(refused(&folder).contains("tokenizer.json"));
}
