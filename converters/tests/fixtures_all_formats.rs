//! One random Whisper written by the reference libraries in eight formats
//! (scripts/make_converter_fixtures.py: transformers, torch, ctranslate2).
//! Every format must convert to the same MLX tensors: exactly where the
//! format stores f32, within the format's own rounding where it does not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asr_converters::whisper::{convert_whisper, OutputDtype, SourceLayout, WriteOptions};
use asr_models::whisper::WhisperDims;
use mlx::Array;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-whisper")
        .join(name)
}

struct Converted {
    layout: SourceLayout,
    dims: WhisperDims,
    tensors: BTreeMap<String, Array>,
}

fn convert(name: &str) -> Converted {
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("mlx");
    let opts = WriteOptions {
        dtype: OutputDtype::F32,
        quantization: None,
        force: false,
    };
    let loaded = convert_whisper(&fixture(name), &dst, &opts, &|_, _| {})
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let tensors = mlx::io::load_safetensors(dst.join("weights.safetensors"))
        .unwrap()
        .tensors;
    Converted {
        layout: loaded.layout,
        dims: loaded.weights.dims,
        tensors,
    }
}

fn values(a: &Array) -> Vec<f32> {
    a.astype(mlx::Dtype::F32).unwrap().to_vec::<f32>().unwrap()
}

/// Compares `b` to the reference `a` row by row (axis 0), allowing
/// `rel * |x| + row_step * max|row|` per element.
fn assert_close(name: &str, what: &str, a: &Array, b: &Array, rel: f32, row_step: f32) {
    assert_eq!(a.shape(), b.shape(), "{what}: {name}");
    let rows = a.shape().first().map_or(1, |&r| r.max(1) as usize);
    let (a, b) = (values(a), values(b));
    let width = (a.len() / rows).max(1);
    for (r, (ra, rb)) in a.chunks(width).zip(b.chunks(width)).enumerate() {
        let max = ra.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
            let tol = rel * x.abs() + row_step * max + 1e-6;
            assert!(
                (x - y).abs() <= tol,
                "{what}: {name}[{r}][{i}] {y} vs {x} (tol {tol})"
            );
        }
    }
}

#[test]
fn every_format_converts_to_the_same_tensors() {
    let reference = convert("hf-safetensors");
    assert_eq!(reference.layout, SourceLayout::HuggingFace);
    assert_eq!(
        (
            reference.dims.n_audio_state,
            reference.dims.n_text_layer,
            reference.dims.n_vocab
        ),
        (32, 2, 96)
    );
    // 10 top-level + 15 per encoder block + 24 per decoder block + alignment_heads.
    assert_eq!(reference.tensors.len(), 10 + 15 * 2 + 24 * 2 + 1);

    // (fixture, layout, relative tolerance, tolerance as a fraction of the row's max)
    let cases = [
        ("hf-sharded", SourceLayout::HuggingFace, 0.0, 0.0),
        ("hf-bin", SourceLayout::HuggingFace, 0.0, 0.0),
        ("hf-bin-sharded", SourceLayout::HuggingFace, 0.0, 0.0),
        ("openai.pt", SourceLayout::OpenAi, 0.0, 0.0),
        // float16 keeps 11 significant bits.
        ("ct2-float16", SourceLayout::CTranslate2, 1.0 / 1024.0, 0.0),
        // int8: per-row scale 127 / max|row|, rounding to the nearest step.
        ("ct2-int8", SourceLayout::CTranslate2, 0.0, 0.5 / 127.0),
    ];
    for (name, layout, rel, row_step) in cases {
        let other = convert(name);
        assert_eq!(other.layout, layout, "{name}");
        assert_eq!(other.dims, reference.dims, "{name}");
        let model_tensors = |c: &Converted| {
            c.tensors
                .keys()
                .filter(|k| *k != "alignment_heads")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            model_tensors(&other),
            model_tensors(&reference),
            "{name}: tensor names"
        );
        for key in model_tensors(&reference) {
            assert_close(
                &key,
                name,
                &reference.tensors[&key],
                &other.tensors[&key],
                rel,
                row_step,
            );
        }
    }
}

#[test]
fn alignment_heads_come_from_each_formats_own_config() {
    let heads = |name: &str| {
        convert(name)
            .tensors
            .get("alignment_heads")
            .map(|a| a.to_vec::<i64>().unwrap())
    };
    // transformers' generation_config.json, as the fixture script set it.
    assert_eq!(heads("hf-safetensors"), Some(vec![1, 0, 1, 3]));
    // ctranslate2 writes its own list into config.json.
    let ct2_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("ct2-int8/config.json")).unwrap())
            .unwrap();
    let expected: Vec<i64> = ct2_config["alignment_heads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()))
        .collect();
    assert_eq!(heads("ct2-int8"), Some(expected));
    // openai-whisper keeps them outside the checkpoint.
    assert_eq!(heads("openai.pt"), None);
}

#[test]
fn hugging_face_names_land_where_the_reference_library_put_them() {
    // Read the transformers file directly: q_proj of layer 1 is query of block 1.
    let st = mlx::io::load_safetensors(fixture("hf-safetensors/model.safetensors"))
        .unwrap()
        .tensors;
    let converted = convert("hf-safetensors");
    for (hf, ours) in [
        (
            "model.encoder.layers.1.self_attn.q_proj.weight",
            "encoder.blocks.1.attn.query.weight",
        ),
        (
            "model.decoder.layers.0.encoder_attn.v_proj.bias",
            "decoder.blocks.0.cross_attn.value.bias",
        ),
        (
            "model.decoder.layers.1.fc2.weight",
            "decoder.blocks.1.mlp2.weight",
        ),
        (
            "model.decoder.embed_tokens.weight",
            "decoder.token_embedding.weight",
        ),
    ] {
        assert_eq!(
            values(&st[hf]),
            values(&converted.tensors[ours]),
            "{hf} -> {ours}"
        );
    }
    // Conv weights: torch [out, in, k] → MLX [out, k, in].
    let src = &st["model.encoder.conv1.weight"];
    let dst = &converted.tensors["encoder.conv1.weight"];
    assert_eq!((src.shape(), dst.shape()), (vec![32, 8, 3], vec![32, 3, 8]));
    assert_eq!(values(&src.transpose(&[0, 2, 1]).unwrap()), values(dst));
}
