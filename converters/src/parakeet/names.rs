//! The tensors a Parakeet folder holds for a config: parakeet-mlx's
//! parameter names, which both published layouts are checked against.

use std::collections::BTreeSet;

use asr_models::parakeet::config::{DecoderConfig, HYBRID_TARGET};
use asr_models::parakeet::{Head, ParakeetConfig};

/// The CTC head of a CTC model (a hybrid's is `ctc_decoder`).
pub(super) const CTC_HEAD: &str = "decoder.decoder_layers.0";
/// The prediction network's embedding, a `.weight` matrix that is not a
/// linear layer's (so never quantized).
pub(super) const EMBEDDING: &str = "decoder.prediction.embed.weight";

/// Every tensor name a model of `config` has.
pub(super) fn expected_names(config: &ParakeetConfig) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let e = &config.encoder;
    let mut add = |module: &str, parts: &[&str]| {
        for part in parts {
            names.insert(format!("{module}.{part}"));
        }
    };
    let biased: &[&str] = if e.use_bias {
        &["weight", "bias"]
    } else {
        &["weight"]
    };
    let affine = &["weight", "bias"];
    // One full convolution, then a depthwise and a pointwise one per
    // further halving, with a ReLU (no parameters) after each stage.
    add("encoder.pre_encode.conv.0", affine);
    for stage in 1..e.subsampling_factor.trailing_zeros() as usize {
        add(
            &format!("encoder.pre_encode.conv.{}", 3 * stage - 1),
            affine,
        );
        add(&format!("encoder.pre_encode.conv.{}", 3 * stage), affine);
    }
    add("encoder.pre_encode.out", affine);
    for layer in 0..e.n_layers {
        let l = format!("encoder.layers.{layer}");
        for norm in [
            "norm_feed_forward1",
            "norm_self_att",
            "norm_conv",
            "norm_feed_forward2",
            "norm_out",
        ] {
            add(&format!("{l}.{norm}"), affine);
        }
        for ff in ["feed_forward1", "feed_forward2"] {
            add(&format!("{l}.{ff}.linear1"), biased);
            add(&format!("{l}.{ff}.linear2"), biased);
        }
        for linear in ["linear_q", "linear_k", "linear_v", "linear_out"] {
            add(&format!("{l}.self_attn.{linear}"), biased);
        }
        add(
            &format!("{l}.self_attn"),
            &["linear_pos.weight", "pos_bias_u", "pos_bias_v"],
        );
        for conv in ["pointwise_conv1", "depthwise_conv", "pointwise_conv2"] {
            add(&format!("{l}.conv.{conv}"), biased);
        }
        add(
            &format!("{l}.conv.batch_norm"),
            &["weight", "bias", "running_mean", "running_var"],
        );
    }
    if let DecoderConfig::Prediction(prediction) = &config.decoder {
        add("decoder.prediction.embed", &["weight"]);
        for layer in 0..prediction.prednet.pred_rnn_layers {
            add(
                &format!("decoder.prediction.dec_rnn.lstm.{layer}"),
                &["Wx", "Wh", "bias"],
            );
        }
        for linear in ["joint.pred", "joint.enc", "joint.joint_net.2"] {
            add(linear, affine);
        }
    }
    if config.head() == Ok(Head::Ctc) {
        add(CTC_HEAD, affine);
    } else if config.target == HYBRID_TARGET && config.aux_ctc.is_some() {
        add("ctc_decoder.decoder_layers.0", affine);
    }
    names
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
            expected_names(&config)
                .into_iter()
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
