//! Where each source tensor goes in the canonical (mlx-whisper) layout.
//!
//! Canonical names follow mlx-whisper's modules: `encoder.conv1`,
//! `encoder.blocks.N.{attn,attn_ln,mlp1,mlp2,mlp_ln}`, `encoder.ln_post`,
//! `decoder.token_embedding`, `decoder.positional_embedding`,
//! `decoder.blocks.N.{attn,attn_ln,cross_attn,cross_attn_ln,mlp1,mlp2,mlp_ln}`,
//! `decoder.ln`; attentions hold `query`, `key` (no bias), `value`, `out`.

use asr_models::whisper::WhisperDims;

/// The published layouts a Whisper checkpoint can come in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SourceLayout {
    /// openai-whisper `.pt` (`dims` + `model_state_dict`), or the canonical layout itself.
    OpenAi,
    /// Hugging Face `transformers` WhisperForConditionalGeneration.
    HuggingFace,
    /// CTranslate2 `model.bin` (faster-whisper).
    CTranslate2,
}

/// What happens to one source tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Stored under this canonical name unchanged.
    Keep(String),
    /// A PyTorch conv weight `[out, in, k]`, stored as MLX's `[out, k, in]`.
    Conv(String),
    /// A fused projection cut along axis 0 into equal parts. A `None` part is
    /// a key bias that Whisper does not have: it must be all zeros.
    Split(Vec<Option<String>>),
    /// Not stored: sinusoidal positions that the model recomputes.
    Recomputed,
    /// Not stored: the output projection, tied to the token embedding.
    TiedOutput,
    /// Not stored: a scalar model setting (CTranslate2 keeps head counts and
    /// flags as 0-D variables), read into the dimensions instead.
    Setting,
}

/// The rule for `name`, or `None` when the name is not part of a Whisper model.
pub fn rule(layout: SourceLayout, name: &str) -> Option<Rule> {
    match layout {
        SourceLayout::OpenAi => openai_rule(name),
        SourceLayout::HuggingFace => openai_rule(&hf_to_openai(name)?),
        SourceLayout::CTranslate2 => ct2_rule(name),
    }
}

fn openai_rule(name: &str) -> Option<Rule> {
    if name == "encoder.positional_embedding" {
        return Some(Rule::Recomputed);
    }
    if name == "proj_out.weight" {
        return Some(Rule::TiedOutput);
    }
    if name.starts_with("encoder.conv") && name.ends_with(".weight") {
        return Some(Rule::Conv(name.to_string()));
    }
    if !(name.starts_with("encoder.") || name.starts_with("decoder.")) {
        return None;
    }
    // openai-whisper's MLP is nn.Sequential(Linear, GELU, Linear).
    Some(Rule::Keep(
        name.replace(".mlp.0.", ".mlp1.")
            .replace(".mlp.2.", ".mlp2."),
    ))
}

/// Renames a Hugging Face parameter to openai-whisper's name.
fn hf_to_openai(name: &str) -> Option<String> {
    let name = name.strip_prefix("model.").unwrap_or(name);
    if name == "proj_out.weight" {
        return Some(name.to_string());
    }
    let replacements = [
        (
            "encoder.embed_positions.weight",
            "encoder.positional_embedding",
        ),
        (
            "decoder.embed_positions.weight",
            "decoder.positional_embedding",
        ),
        ("decoder.embed_tokens.", "decoder.token_embedding."),
        ("encoder.layer_norm.", "encoder.ln_post."),
        ("decoder.layer_norm.", "decoder.ln."),
        (".layers.", ".blocks."),
        (".self_attn_layer_norm.", ".attn_ln."),
        (".encoder_attn_layer_norm.", ".cross_attn_ln."),
        (".final_layer_norm.", ".mlp_ln."),
        (".self_attn.", ".attn."),
        (".encoder_attn.", ".cross_attn."),
        (".q_proj.", ".query."),
        (".k_proj.", ".key."),
        (".v_proj.", ".value."),
        (".out_proj.", ".out."),
        (".fc1.", ".mlp1."),
        (".fc2.", ".mlp2."),
    ];
    if !(name.starts_with("encoder.") || name.starts_with("decoder.")) {
        return None;
    }
    let mut out = name.to_string();
    for (from, to) in replacements {
        out = out.replace(from, to);
    }
    Some(out)
}

/// CTranslate2 names: `encoder/layer_3/self_attention/linear_0/weight`.
fn ct2_rule(name: &str) -> Option<Rule> {
    let parts: Vec<&str> = name.split('/').collect();
    let keep = |s: String| Some(Rule::Keep(s));
    match parts.as_slice() {
        ["encoder", conv @ ("conv1" | "conv2"), "weight"] => {
            Some(Rule::Conv(format!("encoder.{conv}.weight")))
        }
        ["encoder", conv @ ("conv1" | "conv2"), "bias"] => keep(format!("encoder.{conv}.bias")),
        ["encoder", "position_encodings", "encodings"] => Some(Rule::Recomputed),
        ["decoder", "position_encodings", "encodings"] => {
            keep("decoder.positional_embedding".into())
        }
        ["decoder", "embeddings", "weight"] => keep("decoder.token_embedding.weight".into()),
        ["decoder", "projection", "weight"] => Some(Rule::TiedOutput),
        [side @ ("encoder" | "decoder"), "layer_norm", p] => {
            let module = if *side == "encoder" { "ln_post" } else { "ln" };
            keep(format!("{side}.{module}.{}", ln_param(p)?))
        }
        ["encoder" | "decoder", setting] if !setting.starts_with("layer_") => Some(Rule::Setting),
        [side @ ("encoder" | "decoder"), layer, rest @ ..] => {
            let index: usize = layer.strip_prefix("layer_")?.parse().ok()?;
            ct2_block_rule(&format!("{side}.blocks.{index}"), rest)
        }
        _ => None,
    }
}

fn ln_param(p: &str) -> Option<&'static str> {
    match p {
        "gamma" => Some("weight"),
        "beta" => Some("bias"),
        _ => None,
    }
}

fn ct2_block_rule(block: &str, rest: &[&str]) -> Option<Rule> {
    let keep = |s: String| Some(Rule::Keep(s));
    let split = |names: [Option<String>; 3]| Some(Rule::Split(names.into_iter().collect()));
    match rest {
        ["self_attention", "linear_0", "weight"] => split([
            Some(format!("{block}.attn.query.weight")),
            Some(format!("{block}.attn.key.weight")),
            Some(format!("{block}.attn.value.weight")),
        ]),
        ["self_attention", "linear_0", "bias"] => split([
            Some(format!("{block}.attn.query.bias")),
            None,
            Some(format!("{block}.attn.value.bias")),
        ]),
        ["self_attention", "linear_1", p] => keep(format!("{block}.attn.out.{p}")),
        ["self_attention", "layer_norm", p] => keep(format!("{block}.attn_ln.{}", ln_param(p)?)),
        ["attention", "linear_0", p] => keep(format!("{block}.cross_attn.query.{p}")),
        ["attention", "linear_1", "weight"] => Some(Rule::Split(vec![
            Some(format!("{block}.cross_attn.key.weight")),
            Some(format!("{block}.cross_attn.value.weight")),
        ])),
        ["attention", "linear_1", "bias"] => Some(Rule::Split(vec![
            None,
            Some(format!("{block}.cross_attn.value.bias")),
        ])),
        ["attention", "linear_2", p] => keep(format!("{block}.cross_attn.out.{p}")),
        ["attention", "layer_norm", p] => keep(format!("{block}.cross_attn_ln.{}", ln_param(p)?)),
        ["ffn", "linear_0", p] => keep(format!("{block}.mlp1.{p}")),
        ["ffn", "linear_1", p] => keep(format!("{block}.mlp2.{p}")),
        ["ffn", "layer_norm", p] => keep(format!("{block}.mlp_ln.{}", ln_param(p)?)),
        _ => None,
    }
}

/// Every tensor a complete canonical model has, with its shape.
pub fn expected_tensors(d: &WhisperDims) -> Vec<(String, Vec<usize>)> {
    // Host shapes; a negative dimension (which `validate` refuses) as 0.
    let size = |n: i32| usize::try_from(n).unwrap_or(0);
    let (audio, text) = (size(d.n_audio_state), size(d.n_text_state));
    let mut out = vec![
        (
            "encoder.conv1.weight".to_string(),
            vec![audio, 3, size(d.n_mels)],
        ),
        ("encoder.conv1.bias".to_string(), vec![audio]),
        ("encoder.conv2.weight".to_string(), vec![audio, 3, audio]),
        ("encoder.conv2.bias".to_string(), vec![audio]),
        ("encoder.ln_post.weight".to_string(), vec![audio]),
        ("encoder.ln_post.bias".to_string(), vec![audio]),
        (
            "decoder.token_embedding.weight".to_string(),
            vec![size(d.n_vocab), text],
        ),
        (
            "decoder.positional_embedding".to_string(),
            vec![size(d.n_text_ctx), text],
        ),
        ("decoder.ln.weight".to_string(), vec![text]),
        ("decoder.ln.bias".to_string(), vec![text]),
    ];
    for i in 0..d.n_audio_layer {
        block_tensors(&mut out, &format!("encoder.blocks.{i}"), audio, false);
    }
    for i in 0..d.n_text_layer {
        block_tensors(&mut out, &format!("decoder.blocks.{i}"), text, true);
    }
    out
}

fn block_tensors(out: &mut Vec<(String, Vec<usize>)>, block: &str, n: usize, cross: bool) {
    let mut attention = |attn: &str| {
        for proj in ["query", "key", "value", "out"] {
            out.push((format!("{block}.{attn}.{proj}.weight"), vec![n, n]));
            if proj != "key" {
                out.push((format!("{block}.{attn}.{proj}.bias"), vec![n]));
            }
        }
        out.push((format!("{block}.{attn}_ln.weight"), vec![n]));
        out.push((format!("{block}.{attn}_ln.bias"), vec![n]));
    };
    attention("attn");
    if cross {
        attention("cross_attn");
    }
    out.push((format!("{block}.mlp1.weight"), vec![4 * n, n]));
    out.push((format!("{block}.mlp1.bias"), vec![4 * n]));
    out.push((format!("{block}.mlp2.weight"), vec![n, 4 * n]));
    out.push((format!("{block}.mlp2.bias"), vec![n]));
    out.push((format!("{block}.mlp_ln.weight"), vec![n]));
    out.push((format!("{block}.mlp_ln.bias"), vec![n]));
}

/// Whether a canonical tensor is the weight of a linear or embedding layer,
/// the ones affine quantization applies to (as mlx-whisper's loader expects).
pub fn is_quantizable(name: &str) -> bool {
    name == "decoder.token_embedding.weight"
        || (name.ends_with(".weight")
            && [".query.", ".key.", ".value.", ".out.", ".mlp1.", ".mlp2."]
                .iter()
                .any(|m| name.contains(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_names_map_onto_openai_names() {
        let cases = [
            (
                "model.encoder.layers.2.self_attn.k_proj.weight",
                "encoder.blocks.2.attn.key.weight",
            ),
            (
                "model.decoder.layers.0.encoder_attn.out_proj.bias",
                "decoder.blocks.0.cross_attn.out.bias",
            ),
            (
                "model.decoder.layers.1.encoder_attn_layer_norm.weight",
                "decoder.blocks.1.cross_attn_ln.weight",
            ),
            (
                "model.encoder.layers.0.final_layer_norm.bias",
                "encoder.blocks.0.mlp_ln.bias",
            ),
            (
                "model.encoder.layers.0.fc2.weight",
                "encoder.blocks.0.mlp2.weight",
            ),
            ("model.encoder.layer_norm.weight", "encoder.ln_post.weight"),
            ("model.decoder.layer_norm.bias", "decoder.ln.bias"),
            (
                "model.decoder.embed_tokens.weight",
                "decoder.token_embedding.weight",
            ),
            (
                "model.decoder.embed_positions.weight",
                "decoder.positional_embedding",
            ),
        ];
        for (hf, openai) in cases {
            assert_eq!(
                rule(SourceLayout::HuggingFace, hf),
                Some(Rule::Keep(openai.into())),
                "{hf}"
            );
        }
        assert_eq!(
            rule(
                SourceLayout::HuggingFace,
                "model.encoder.embed_positions.weight"
            ),
            Some(Rule::Recomputed)
        );
        assert_eq!(
            rule(SourceLayout::HuggingFace, "proj_out.weight"),
            Some(Rule::TiedOutput)
        );
        assert_eq!(
            rule(SourceLayout::HuggingFace, "model.encoder.conv2.weight"),
            Some(Rule::Conv("encoder.conv2.weight".into()))
        );
        assert_eq!(rule(SourceLayout::HuggingFace, "lm_head.something"), None);
    }

    #[test]
    fn ctranslate2_fused_projections_split_into_query_key_value() {
        let Some(Rule::Split(parts)) = rule(
            SourceLayout::CTranslate2,
            "decoder/layer_1/self_attention/linear_0/bias",
        ) else {
            panic!("expected a split");
        };
        assert_eq!(
            parts,
            vec![
                Some("decoder.blocks.1.attn.query.bias".into()),
                None,
                Some("decoder.blocks.1.attn.value.bias".into())
            ]
        );
        assert_eq!(
            rule(
                SourceLayout::CTranslate2,
                "decoder/layer_0/attention/layer_norm/gamma"
            ),
            Some(Rule::Keep("decoder.blocks.0.cross_attn_ln.weight".into()))
        );
        assert_eq!(
            rule(
                SourceLayout::CTranslate2,
                "encoder/layer_x/ffn/linear_0/weight"
            ),
            None
        );
        assert_eq!(
            rule(
                SourceLayout::CTranslate2,
                "decoder/layer_0/ffn/layer_norm/delta"
            ),
            None
        );
        assert_eq!(
            rule(SourceLayout::CTranslate2, "decoder/num_heads"),
            Some(Rule::Setting)
        );
    }

    #[test]
    fn expected_tensor_count_matches_the_architecture() {
        let d = WhisperDims::tiny_en();
        // 10 top-level + 15 per encoder block + 24 per decoder block.
        assert_eq!(expected_tensors(&d).len(), 10 + 15 * 4 + 24 * 4);
        assert!(is_quantizable("decoder.blocks.3.cross_attn.key.weight"));
        assert!(!is_quantizable("decoder.blocks.3.cross_attn_ln.weight"));
        assert!(!is_quantizable("encoder.conv1.weight"));
    }
}
