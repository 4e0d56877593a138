//! The tensors a Parakeet folder holds for a config: parakeet-mlx's
//! parameter names and shapes (MLX layouts), which every source is checked
//! against.

use std::collections::BTreeMap;

use asr_models::parakeet::config::{CtcHeadConfig, DecoderConfig, HYBRID_TARGET};
use asr_models::parakeet::{Head, ParakeetConfig};

use crate::expected::Expected;

/// The prediction network's embedding, a `.weight` matrix that is not a
/// linear layer's (so never quantized).
pub(super) const EMBEDDING: &str = "decoder.prediction.embed.weight";

impl Expected {
    /// A layer norm's or batch norm's per-channel tensors.
    fn norm(&mut self, module: &str, parts: &[&str], channels: i32) {
        for part in parts {
            self.add(format!("{module}.{part}"), &[channels]);
        }
    }

    /// NeMo's `ConvASRDecoder`: a 1-wide convolution to the tokens and blank.
    fn ctc_head(&mut self, module: &str, head: &CtcHeadConfig) {
        let classes = if head.num_classes <= 0 {
            head.vocabulary.len() as i32
        } else {
            head.num_classes
        };
        self.layer(module, &[classes + 1, 1, head.feat_in], true);
    }
}

/// Every tensor a model of `config` has, with its shape.
pub(super) fn expected_tensors(config: &ParakeetConfig) -> BTreeMap<String, Vec<i32>> {
    let mut x = Expected::default();
    let e = &config.encoder;
    let (d, c, bias) = (e.d_model, e.subsampling_conv_channels, e.use_bias);
    // One full 3x3 stride-2 convolution, then a depthwise and a pointwise
    // one per further halving, with a ReLU (no parameters) after each stage.
    let stages = e.subsampling_factor.trailing_zeros() as i32;
    x.layer("encoder.pre_encode.conv.0", &[c, 3, 3, 1], true);
    for stage in 1..stages {
        x.layer(
            &format!("encoder.pre_encode.conv.{}", 3 * stage - 1),
            &[c, 3, 3, 1],
            true,
        );
        x.layer(
            &format!("encoder.pre_encode.conv.{}", 3 * stage),
            &[c, 1, 1, c],
            true,
        );
    }
    let freq = (0..stages).fold(e.feat_in, |f, _| (f - 1) / 2 + 1);
    x.layer("encoder.pre_encode.out", &[d, c * freq], true);
    let ff = d * e.ff_expansion_factor;
    for layer in 0..e.n_layers {
        let l = format!("encoder.layers.{layer}");
        for norm in [
            "norm_feed_forward1",
            "norm_self_att",
            "norm_conv",
            "norm_feed_forward2",
            "norm_out",
        ] {
            x.norm(&format!("{l}.{norm}"), &["weight", "bias"], d);
        }
        for block in ["feed_forward1", "feed_forward2"] {
            x.layer(&format!("{l}.{block}.linear1"), &[ff, d], bias);
            x.layer(&format!("{l}.{block}.linear2"), &[d, ff], bias);
        }
        for linear in ["linear_q", "linear_k", "linear_v", "linear_out"] {
            x.layer(&format!("{l}.self_attn.{linear}"), &[d, d], bias);
        }
        x.layer(&format!("{l}.self_attn.linear_pos"), &[d, d], false);
        for u_or_v in ["pos_bias_u", "pos_bias_v"] {
            x.add(
                format!("{l}.self_attn.{u_or_v}"),
                &[e.n_heads, d / e.n_heads],
            );
        }
        x.layer(&format!("{l}.conv.pointwise_conv1"), &[2 * d, 1, d], bias);
        x.layer(
            &format!("{l}.conv.depthwise_conv"),
            &[d, e.conv_kernel_size, 1],
            bias,
        );
        x.layer(&format!("{l}.conv.pointwise_conv2"), &[d, 1, d], bias);
        x.norm(
            &format!("{l}.conv.batch_norm"),
            &["weight", "bias", "running_mean", "running_var"],
            d,
        );
    }
    match (&config.decoder, &config.joint) {
        (DecoderConfig::Prediction(p), Some(joint)) => {
            let h = p.prednet.pred_hidden;
            // With blank as padding, blank has an embedding row too.
            let rows = p.vocab_size + i32::from(p.blank_as_pad);
            x.add(EMBEDDING.into(), &[rows, h]);
            for layer in 0..p.prednet.pred_rnn_layers {
                let lstm = format!("decoder.prediction.dec_rnn.lstm.{layer}");
                x.add(format!("{lstm}.Wx"), &[4 * h, h]);
                x.add(format!("{lstm}.Wh"), &[4 * h, h]);
                x.add(format!("{lstm}.bias"), &[4 * h]);
            }
            let net = &joint.jointnet;
            x.layer("joint.pred", &[net.joint_hidden, net.pred_hidden], true);
            x.layer("joint.enc", &[net.joint_hidden, net.encoder_hidden], true);
            let outputs = joint.num_classes + 1 + joint.num_extra_outputs;
            x.layer("joint.joint_net.2", &[outputs, net.joint_hidden], true);
        }
        (DecoderConfig::Ctc(head), _) if config.head() == Ok(Head::Ctc) => {
            x.ctc_head("decoder.decoder_layers.0", head);
        }
        _ => {}
    }
    if let Some(aux) = config
        .aux_ctc
        .as_ref()
        .filter(|_| config.target == HYBRID_TARGET)
    {
        x.ctc_head("ctc_decoder.decoder_layers.0", &aux.decoder);
    }
    x.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsampling_stages_follow_the_factor() {
        let names = |factor: i32| {
            let config: ParakeetConfig = serde_json::from_value(serde_json::json!({
                "target": asr_models::parakeet::config::CTC_TARGET,
                "preprocessor": {"sample_rate": 16000, "normalize": "per_feature",
                    "window_size": 0.025, "window_stride": 0.01, "window": "hann",
                    "features": 80, "n_fft": 512},
                "encoder": {"feat_in": 80, "n_layers": 0, "d_model": 8, "n_heads": 2,
                    "ff_expansion_factor": 4, "subsampling_factor": factor,
                    "subsampling": "dw_striding", "subsampling_conv_channels": 4,
                    "self_attention_model": "rel_pos", "conv_kernel_size": 9,
                    "pos_emb_max_len": 100},
                "decoder": {"feat_in": 8, "num_classes": 2, "vocabulary": ["a", "b"]}
            }))
            .unwrap();
            expected_tensors(&config)
                .into_keys()
                .filter(|n| n.starts_with("encoder.pre_encode.conv.") && n.ends_with("weight"))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(2), ["encoder.pre_encode.conv.0.weight"]);
        assert_eq!(
            names(8),
            [
                "encoder.pre_encode.conv.0.weight",
                "encoder.pre_encode.conv.2.weight",
                "encoder.pre_encode.conv.3.weight",
                "encoder.pre_encode.conv.5.weight",
                "encoder.pre_encode.conv.6.weight",
            ]
        );
    }
}
