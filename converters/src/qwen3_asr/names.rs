//! The tensors of our Qwen3-ASR folder for a config (transformers' names
//! and PyTorch layouts), and the names of Qwen's original checkpoints.

use std::collections::BTreeMap;

use asr_models::qwen3_asr::config::Qwen3AsrConfig;

use crate::expected::Expected;

/// The embedding table, which a tied output layer reuses.
pub(super) const EMBEDDING: &str = "model.language_model.embed_tokens.weight";
/// The output layer, absent when tied to the embedding table.
pub(super) const LM_HEAD: &str = "lm_head.weight";

/// Qwen's original ("thinker") names and ours, by prefix; the first match
/// wins, so the projector (inside Qwen's audio tower) comes first.
const THINKER_TO_OURS: [(&str, &str); 5] = [
    (
        "thinker.audio_tower.proj1.",
        "model.multi_modal_projector.linear_1.",
    ),
    (
        "thinker.audio_tower.proj2.",
        "model.multi_modal_projector.linear_2.",
    ),
    ("thinker.audio_tower.", "model.audio_tower."),
    ("thinker.model.", "model.language_model."),
    ("thinker.lm_head.", "lm_head."),
];

/// Our name of Qwen's tensor `name`; a name under none of Qwen's prefixes
/// stays as it is (and is then refused as unexpected).
pub(super) fn from_thinker(name: &str) -> String {
    THINKER_TO_OURS
        .iter()
        .find_map(|(qwen, ours)| name.strip_prefix(qwen).map(|rest| format!("{ours}{rest}")))
        .unwrap_or_else(|| name.to_string())
}

/// Every tensor a model of `config` has, with its shape.
pub(super) fn expected_tensors(config: &Qwen3AsrConfig) -> BTreeMap<String, Vec<i32>> {
    let mut x = Expected::default();
    let a = &config.audio_config;
    let (d, ffn, channels) = (
        a.d_model as i32,
        a.encoder_ffn_dim as i32,
        a.downsample_hidden_size as i32,
    );
    let tower = "model.audio_tower";
    // Three 3x3 stride-2 convolutions over bands x time, each halving the
    // bands (rounding up), then a projection of each frame's channels x
    // bands.
    for (i, input) in [1, channels, channels].into_iter().enumerate() {
        x.layer(
            &format!("{tower}.conv2d{}", i + 1),
            &[channels, input, 3, 3],
            true,
        );
    }
    let bands = (0..3).fold(a.num_mel_bins, |n, _| n.div_ceil(2)) as i32;
    x.layer(&format!("{tower}.conv_out"), &[d, channels * bands], false);
    for i in 0..a.encoder_layers {
        let l = format!("{tower}.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            x.layer(&format!("{l}.self_attn.{proj}"), &[d, d], true);
        }
        x.layer(&format!("{l}.self_attn_layer_norm"), &[d], true);
        x.layer(&format!("{l}.fc1"), &[ffn, d], true);
        x.layer(&format!("{l}.fc2"), &[d, ffn], true);
        x.layer(&format!("{l}.final_layer_norm"), &[d], true);
    }
    x.layer(&format!("{tower}.ln_post"), &[d], true);
    let projector = "model.multi_modal_projector";
    x.layer(&format!("{projector}.linear_1"), &[d, d], true);
    x.layer(
        &format!("{projector}.linear_2"),
        &[a.output_dim as i32, d],
        true,
    );

    let t = &config.text_config;
    let (h, inter, hd) = (t.hidden_size, t.intermediate_size, t.head_dim);
    let (q, kv) = (t.num_attention_heads * hd, t.num_key_value_heads * hd);
    x.add(EMBEDDING.into(), &[t.vocab_size, h]);
    for i in 0..t.num_hidden_layers {
        let l = format!("model.language_model.layers.{i}");
        x.layer(&format!("{l}.input_layernorm"), &[h], false);
        x.layer(&format!("{l}.self_attn.q_proj"), &[q, h], false);
        x.layer(&format!("{l}.self_attn.k_proj"), &[kv, h], false);
        x.layer(&format!("{l}.self_attn.v_proj"), &[kv, h], false);
        x.layer(&format!("{l}.self_attn.o_proj"), &[h, q], false);
        x.layer(&format!("{l}.self_attn.q_norm"), &[hd], false);
        x.layer(&format!("{l}.self_attn.k_norm"), &[hd], false);
        x.layer(&format!("{l}.post_attention_layernorm"), &[h], false);
        x.layer(&format!("{l}.mlp.gate_proj"), &[inter, h], false);
        x.layer(&format!("{l}.mlp.up_proj"), &[inter, h], false);
        x.layer(&format!("{l}.mlp.down_proj"), &[h, inter], false);
    }
    x.layer("model.language_model.norm", &[h], false);
    if !t.tie_word_embeddings {
        x.add(LM_HEAD.into(), &[t.vocab_size, h]);
    }
    x.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinker_names_become_ours() {
        for (qwen, ours) in [
            (
                "thinker.audio_tower.proj1.weight",
                "model.multi_modal_projector.linear_1.weight",
            ),
            (
                "thinker.audio_tower.proj2.bias",
                "model.multi_modal_projector.linear_2.bias",
            ),
            (
                "thinker.audio_tower.layers.3.fc1.weight",
                "model.audio_tower.layers.3.fc1.weight",
            ),
            (
                "thinker.model.layers.0.mlp.up_proj.weight",
                "model.language_model.layers.0.mlp.up_proj.weight",
            ),
            ("thinker.lm_head.weight", "lm_head.weight"),
            ("talker.codec_head.weight", "talker.codec_head.weight"),
        ] {
            assert_eq!(from_thinker(qwen), ours);
        }
    }
}
