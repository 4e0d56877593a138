//! Qwen3-ASR conversions of the tiny random model that
//! scripts/make_qwen3_checkpoints.py saves in both published layouts: Qwen's
//! original ("thinker", two shards and an index) and transformers' (bf16).
//! Both must give the same folder, whose tensors are the bf16 originals
//! widened (or quantized within the quantization's error), which the
//! model's config, audio encoder and text decoder load; bad sources are
//! refused naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use asr_converters::out_folder::convert_into_folder;
use asr_converters::qwen3_asr::{convert_qwen3_asr, repo_files};
use asr_converters::whisper::OutputDtype;
use asr_converters::whisper::WeightOptions;
use asr_models::quantization::Quantization;
use asr_models::qwen3_asr::audio_encoder::AudioEncoder;
use asr_models::qwen3_asr::config::Qwen3AsrConfig;
use asr_models::qwen3_asr::text_decoder::TextDecoder;
use asr_models::{ModelConfig, Weights};
use mlx::quant::QuantizedMatrix;
use mlx::{Array, Dtype};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_asr")
}

fn hf() -> PathBuf {
    fixtures().join("hf")
}

fn thinker() -> PathBuf {
    fixtures().join("thinker")
}

const TOKENIZER: [&str; 3] = ["vocab.json", "merges.txt", "tokenizer_config.json"];

/// Converts `from` into a new folder under `dir` named `name`.
fn convert(from: &Path, dir: &Path, name: &str, opts: WeightOptions) -> Result<PathBuf, String> {
    let out = dir.join(name);
    convert_into_folder(from, &out, false, |from, staged| {
        convert_qwen3_asr(from, staged, &opts)
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

fn tensors(path: &Path) -> BTreeMap<String, Array> {
    mlx::io::load_safetensors(path).unwrap().tensors
}

fn values(a: &Array) -> Vec<f32> {
    a.astype(Dtype::F32).unwrap().to_vec::<f32>().unwrap()
}

/// The transformers checkpoint's tensors (bf16) widened to f32, with the
/// output layer left out as the embedding table is tied to it.
fn originals() -> BTreeMap<String, (Vec<i32>, Vec<f32>)> {
    asr_converters::load_state_dict(&hf().join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(name, raw)| {
            assert_eq!(raw.dtype, asr_converters::TensorDtype::BF16, "{name}");
            let shape = raw.shape.iter().map(|&d| d as i32).collect();
            (name, (shape, raw.to_f32()))
        })
        .collect()
}

fn quantized(q: Quantization) -> WeightOptions {
    WeightOptions {
        dtype: OutputDtype::F32,
        quantization: Some(q),
    }
}

/// Loads the folder as the model does: its config, then the audio encoder
/// and the text decoder from its weights.
fn load_model(folder: &Path) -> Qwen3AsrConfig {
    let config = Qwen3AsrConfig::load(&folder.join("config.json")).unwrap();
    let weights = Weights::load(&folder.join("weights.safetensors"), config.quantization).unwrap();
    AudioEncoder::load(&weights, "model", &config.audio_config).unwrap();
    TextDecoder::load(&weights, "model.language_model", &config.text_config).unwrap();
    config
}

#[test]
fn both_layouts_give_the_bf16_originals_in_f32_and_a_folder_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let from_hf = convert(&hf(), dir.path(), "hf", WeightOptions::default()).unwrap();
    let from_thinker = convert(&thinker(), dir.path(), "thinker", Default::default()).unwrap();
    let a = tensors(&from_hf.join("weights.safetensors"));
    let b = tensors(&from_thinker.join("weights.safetensors"));
    let originals = originals();
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        originals.keys().collect::<Vec<_>>(),
        "the transformers layout's tensors"
    );
    assert_eq!(
        b.keys().collect::<Vec<_>>(),
        originals.keys().collect::<Vec<_>>(),
        "the thinker layout's tensors (its lm_head copy left out, as tied)"
    );
    for (name, (shape, want)) in &originals {
        for (layout, written) in [("hf", &a[name]), ("thinker", &b[name])] {
            assert_eq!(written.dtype(), Dtype::F32, "{layout} {name}");
            assert_eq!(&written.shape(), shape, "{layout} {name}");
            assert!(values(written) == *want, "{layout} {name}: values differ");
        }
    }

    let config_hf = load_model(&from_hf);
    let config_thinker = load_model(&from_thinker);
    assert_eq!(config_hf.audio_config, config_thinker.audio_config);
    assert_eq!(config_hf.audio_config.d_model, 32);
    assert_eq!(config_hf.audio_config.max_position_embeddings, 13);
    for config in [&config_hf, &config_thinker] {
        let t = &config.text_config;
        assert_eq!(
            (t.vocab_size, t.hidden_size, t.num_hidden_layers, t.head_dim),
            (96, 64, 2, 32)
        );
        assert!(t.tie_word_embeddings);
        assert_eq!(t.rope_base(), 10000.0);
        assert_eq!(config.audio_token_id, 23);
        assert_eq!(config.quantization, None);
    }
    for (folder, source) in [(&from_hf, hf()), (&from_thinker, thinker())] {
        for file in TOKENIZER {
            assert_eq!(
                fs::read(folder.join(file)).unwrap(),
                fs::read(source.join(file)).unwrap(),
                "{file} copied"
            );
        }
    }
}

#[test]
fn bf16_output_keeps_the_originals_bits() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WeightOptions {
        dtype: OutputDtype::BF16,
        quantization: None,
    };
    let out = convert(&thinker(), dir.path(), "bf16", opts).unwrap();
    let written = tensors(&out.join("weights.safetensors"));
    for (name, (_, want)) in originals() {
        assert_eq!(written[&name].dtype(), Dtype::BF16, "{name}");
        assert!(values(&written[&name]) == want, "{name}");
    }
    load_model(&out);
}

/// The matrices quantized with group size 64: those whose rows (inputs) are
/// 64 wide. The audio encoder's (32 wide) and the decoder's down
/// projections (32) and audio projector's second layer (32) stay.
fn quantized_at_64() -> Vec<String> {
    let mut names = vec![
        "model.audio_tower.conv_out".to_string(),
        "model.language_model.embed_tokens".to_string(),
    ];
    for layer in 0..2 {
        for m in [
            "mlp.gate_proj",
            "mlp.up_proj",
            "self_attn.k_proj",
            "self_attn.o_proj",
            "self_attn.q_proj",
            "self_attn.v_proj",
        ] {
            names.push(format!("model.language_model.layers.{layer}.{m}"));
        }
    }
    names.sort();
    names
}

#[test]
fn quantized_matrices_dequantize_within_a_step_and_load() {
    let originals = originals();
    let matrices: Vec<String> = originals
        .iter()
        .filter(|(n, (shape, _))| n.ends_with(".weight") && shape.len() == 2)
        .map(|(n, _)| n.strip_suffix(".weight").unwrap().to_string())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for (bits, group_size, expected) in [(8, 32, matrices.clone()), (4, 64, quantized_at_64())] {
        let q = Quantization { group_size, bits };
        let out = convert(&thinker(), dir.path(), &format!("q{bits}"), quantized(q)).unwrap();
        assert_eq!(load_model(&out).quantization, Some(q));
        let written = tensors(&out.join("weights.safetensors"));
        let quantized: Vec<String> = written
            .keys()
            .filter_map(|n| n.strip_suffix(".scales"))
            .map(str::to_string)
            .collect();
        assert_eq!(quantized, expected, "q{bits} g{group_size}");
        for prefix in &quantized {
            let name = format!("{prefix}.weight");
            let (shape, want) = &originals[&name];
            let m = QuantizedMatrix {
                weight: written[&name].clone(),
                scales: written[&format!("{prefix}.scales")].clone(),
                biases: written[&format!("{prefix}.biases")].clone(),
                group_size,
                bits,
                int8_activations: false,
            };
            assert_eq!(m.weight.dtype(), Dtype::U32, "{name}");
            assert_eq!(m.weight.shape(), [shape[0], shape[1] * bits / 32], "{name}");
            let got = values(&m.dequantize().unwrap());
            // MLX moves each group's grid so that zero is exact, so values at
            // the far end of a group's range may be up to a step away.
            let scales = values(&m.scales);
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let step = scales[i / group_size as usize].abs();
                assert!(
                    (g - w).abs() <= step * 1.001 + 1e-6,
                    "q{bits} {name}[{i}]: {g} vs {w}, step {step}"
                );
            }
        }
        for (name, (_, want)) in &originals {
            let prefix = name.strip_suffix(".weight").unwrap_or(name);
            if !quantized.iter().any(|p| p == prefix) {
                assert!(values(&written[name]) == *want, "{name} changed");
            }
        }
        assert_eq!(written.len(), originals.len() + 2 * quantized.len());
    }
}

/// A copy of folder `from` at `to`.
fn copy_folder(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The error converting `from`, which must fail.
fn refused(from: &Path, dir: &Path) -> String {
    let name = format!("out-{}", from.file_name().unwrap().to_string_lossy());
    let error =
        convert(from, dir, &name, WeightOptions::default()).expect_err("the conversion must fail");
    assert!(!dir.join(&name).exists(), "nothing written for {error}");
    error
}

/// A copy of the transformers folder whose `model.safetensors` holds
/// `edit`ed tensors.
fn hf_with_tensors(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut BTreeMap<String, Array>),
) -> PathBuf {
    let folder = dir.join(name);
    copy_folder(&hf(), &folder);
    let mut t = tensors(&folder.join("model.safetensors"));
    edit(&mut t);
    // The loaded arrays read the file they came from: write beside it.
    let edited = folder.join("edited.safetensors");
    mlx::io::save_safetensors(&edited, &t, &BTreeMap::new()).unwrap();
    fs::rename(&edited, folder.join("model.safetensors")).unwrap();
    folder
}

/// A copy of the transformers folder whose `config.json` is `edit`ed.
fn hf_with_config(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let folder = dir.join(name);
    copy_folder(&hf(), &folder);
    let path = folder.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    fs::write(&path, config.to_string()).unwrap();
    folder
}

#[test]
fn bad_sources_are_refused_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let expect = |error: String, file: &Path, problem: &str| {
        assert!(
            error.contains(&file.display().to_string()) && error.contains(problem),
            "expected {} and {problem:?} in: {error}",
            file.display()
        );
    };

    let no_config = d.join("no-config");
    copy_folder(&hf(), &no_config);
    fs::remove_file(no_config.join("config.json")).unwrap();
    expect(
        refused(&no_config, d),
        &no_config.join("config.json"),
        "No such file",
    );

    let whisper = hf_with_config(d, "whisper", |c| c["model_type"] = "whisper".into());
    expect(
        refused(&whisper, d),
        &whisper.join("config.json"),
        "model_type is \"whisper\"",
    );
    let neither = hf_with_config(d, "neither", |c| {
        c.as_object_mut().unwrap().remove("audio_config");
    });
    expect(
        refused(&neither, d),
        &neither.join("config.json"),
        "not a Qwen3-ASR config",
    );
    let bad_sizes = hf_with_config(d, "bad-sizes", |c| {
        c["text_config"]["num_key_value_heads"] = 3.into();
    });
    expect(
        refused(&bad_sizes, d),
        &bad_sizes.join("config.json"),
        "num_key_value_heads 3",
    );

    let missing = hf_with_tensors(d, "missing", |t| {
        t.remove("model.language_model.layers.1.mlp.up_proj.weight");
    });
    expect(
        refused(&missing, d),
        &missing.join("model.safetensors"),
        "lacks: model.language_model.layers.1.mlp.up_proj.weight",
    );
    let untied = hf_with_config(d, "untied", |c| c["tie_word_embeddings"] = false.into());
    expect(
        refused(&untied, d),
        &untied.join("model.safetensors"),
        "lacks: lm_head.weight",
    );
    let extra = hf_with_tensors(d, "extra", |t| {
        let table = t["model.language_model.embed_tokens.weight"].clone();
        t.insert("model.extra.weight".into(), table);
    });
    expect(
        refused(&extra, d),
        &extra.join("model.safetensors"),
        "does not have: model.extra.weight",
    );
    let name = "model.audio_tower.layers.0.fc1.weight";
    let reshaped = hf_with_tensors(d, "reshaped", |t| {
        let w = t[name].reshape(&[16, 64]).unwrap();
        t.insert(name.into(), w);
    });
    expect(
        refused(&reshaped, d),
        &reshaped.join("model.safetensors"),
        &format!("{name} is [16, 64], expected [32, 32]"),
    );
    let integers = hf_with_tensors(d, "integers", |t| {
        let w = t[name].astype(Dtype::I32).unwrap();
        t.insert(name.into(), w);
    });
    expect(
        refused(&integers, d),
        &integers.join("model.safetensors"),
        "expected floats",
    );

    let no_weights = d.join("no-weights");
    copy_folder(&hf(), &no_weights);
    fs::remove_file(no_weights.join("model.safetensors")).unwrap();
    expect(refused(&no_weights, d), &no_weights, "no model.safetensors");
    let no_tokenizer = d.join("no-tokenizer");
    copy_folder(&hf(), &no_tokenizer);
    fs::remove_file(no_tokenizer.join("merges.txt")).unwrap();
    expect(refused(&no_tokenizer, d), &no_tokenizer, "no tokenizer");

    let short = d.join("short");
    copy_folder(&thinker(), &short);
    let shard = short.join("model-00002-of-00002.safetensors");
    let bytes = fs::read(&shard).unwrap();
    fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    expect(refused(&short, d), &shard, "cut short");
    let stray = d.join("stray");
    copy_folder(&thinker(), &stray);
    let index = stray.join("model.safetensors.index.json");
    let text = fs::read_to_string(&index).unwrap().replace(
        "\"thinker.model.norm.weight\": \"model-00002",
        "\"thinker.model.norm.weight\": \"model-00001",
    );
    fs::write(&index, text).unwrap();
    expect(
        refused(&stray, d),
        &index,
        "thinker.model.norm.weight is not in its shard",
    );
}

#[test]
fn hub_repos_give_config_weights_and_tokenizer() {
    let listing = |files: &[&str]| files.iter().map(|f| f.to_string()).collect();
    let original = listing(&[
        ".gitattributes",
        "README.md",
        "chat_template.json",
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "preprocessor_config.json",
        "tokenizer_config.json",
        "vocab.json",
    ]);
    assert_eq!(
        repo_files(&original).unwrap(),
        [
            "config.json",
            "model.safetensors.index.json",
            "tokenizer_config.json",
            "vocab.json",
            "merges.txt",
            "preprocessor_config.json",
            "generation_config.json",
        ]
    );
    let transformers = listing(&["config.json", "model.safetensors", "tokenizer.json"]);
    assert_eq!(
        repo_files(&transformers).unwrap(),
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    let no_tokenizer = listing(&["config.json", "model.safetensors", "vocab.json"]);
    assert!(repo_files(&no_tokenizer).unwrap_err().contains("tokenizer"));
    let no_weights = listing(&["config.json", "tokenizer.json"]);
    assert!(repo_files(&no_weights).unwrap_err().contains("no weights"));
}
