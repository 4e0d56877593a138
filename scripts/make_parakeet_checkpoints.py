#!/usr/bin/env python3
"""Tiny random Parakeet checkpoints in NeMo's, mlx-community's and
transformers' layouts, for the converter tests
(converters/tests/parakeet.rs). Outputs are the same bytes on every run.

A hybrid TDT + CTC model (NeMo's EncDecHybridRNNTCTCBPEModel, so that the
encoder, the LSTM prediction network, the joint and the CTC head are all
present) is built by parakeet-mlx 0.6.0 (`parakeet_mlx.utils.from_config`,
MLX CPU wheel) from a NeMo-style config with tiny sizes; every parameter is
replaced by seeded random values (batch-norm variances positive) and saved
twice:

  mlx-community/config.json        the config as JSON
  mlx-community/model.safetensors  parakeet-mlx's parameter names, MLX layouts
  tiny.nemo                        a gzip'd tar as NeMo's `save_to` writes:
                                   ./model_config.yaml and
                                   ./model_weights.ckpt (torch.save'd state
                                   dict with NeMo's names and PyTorch layouts)

NeMo's layout, from its module structure (ConformerEncoder, RNNTDecoder,
RNNTJoint, ConvASRDecoder), is what parakeet-mlx's names mean, with:
  convolutions   [out, in, kernel] and [out, in, kh, kw] (MLX: channels last)
  LSTM layer i   prediction.dec_rnn.lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l{i}
                 (MLX: dec_rnn.lstm.{i}.{Wx,Wh,bias}; bias = bias_ih + bias_hh,
                 so the split written here is random)
  extras         preprocessor.featurizer.{window,fb} buffers and batch norm's
                 num_batches_tracked, which a converter drops

A CTC model is also made by transformers 5.23 (`ParakeetForCTC` with tiny
sizes, seeded random parameters and batch-norm statistics):

  hf-ctc/                   save_pretrained's config.json + model.safetensors
                            (Hugging Face's names, PyTorch layouts), a
                            tokenizer.json (a Unigram vocabulary with <pad>
                            as blank) and preprocessor_config.json
  mlx-community-ctc/        the same weights under parakeet-mlx's names and
                            layouts, loaded strictly into parakeet-mlx's
                            ParakeetCTC built from the equivalent NeMo config
                            (which so checks the mapping), and that config
  tiny-ctc.nemo             the same model as NeMo saves it (transformers'
                            names turned back to NeMo's, PyTorch layouts)
  hf-tdt/, mlx-community-tdt/
                            the same for a TDT model (`ParakeetForTDT`)

Usage:
  ~/.cache/mlx-asr/peers-venv/bin/python scripts/make_parakeet_checkpoints.py \
      converters/tests/fixtures/parakeet
"""
import gzip
import io
import json
import sys
import tarfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import torch
import yaml
from tokenizers import Tokenizer, models
from transformers import (
    ParakeetCTCConfig,
    ParakeetFeatureExtractor,
    ParakeetForCTC,
    ParakeetForTDT,
    ParakeetTDTConfig,
)
from mlx.utils import tree_flatten, tree_unflatten
from parakeet_mlx.utils import from_config

VOCAB = [f"▁t{i}" for i in range(20)]
DURATIONS = [0, 1, 2, 3, 4]

CONFIG = {
    "target": "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel",
    "sample_rate": 16000,
    "model_defaults": {"enc_hidden": 32, "pred_hidden": 16, "tdt_durations": DURATIONS},
    "preprocessor": {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "window": "hann",
        "features": 16,
        "n_fft": 512,
        "log": True,
        "frame_splicing": 1,
        "dither": 1e-5,
        "pad_to": 0,
        "pad_value": 0.0,
    },
    "encoder": {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": 16,
        "feat_out": -1,
        "n_layers": 2,
        "d_model": 32,
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "subsampling_conv_channels": 8,
        "causal_downsampling": False,
        "ff_expansion_factor": 2,
        "self_attention_model": "rel_pos",
        "n_heads": 4,
        "att_context_size": [-1, -1],
        "xscaling": True,
        "untie_biases": True,
        "pos_emb_max_len": 5000,
        "conv_kernel_size": 9,
        "conv_norm_type": "batch_norm",
        "dropout": 0.1,
    },
    "decoder": {
        "_target_": "nemo.collections.asr.modules.RNNTDecoder",
        "normalization_mode": None,
        "random_state_sampling": False,
        "blank_as_pad": True,
        "vocab_size": len(VOCAB),
        "prednet": {"pred_hidden": 16, "pred_rnn_layers": 2, "t_max": None, "dropout": 0.2},
    },
    "joint": {
        "_target_": "nemo.collections.asr.modules.RNNTJoint",
        "log_softmax": None,
        "preserve_memory": False,
        "fuse_loss_wer": True,
        "fused_batch_size": 4,
        "jointnet": {
            "joint_hidden": 24,
            "activation": "relu",
            "dropout": 0.2,
            "encoder_hidden": 32,
            "pred_hidden": 16,
        },
        "num_classes": len(VOCAB),
        "vocabulary": VOCAB,
        "num_extra_outputs": len(DURATIONS),
    },
    "decoding": {
        "strategy": "greedy_batch",
        "model_type": "tdt",
        "durations": DURATIONS,
        "greedy": {"max_symbols": 10},
    },
    "aux_ctc": {
        "ctc_loss_weight": 0.3,
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 32,
            "num_classes": -1,
            "vocabulary": VOCAB,
        },
    },
}

LSTM_PARTS = {"Wx": "weight_ih", "Wh": "weight_hh"}


def random_parameters(model, rng):
    out = {}
    for name, p in tree_flatten(model.parameters()):
        values = rng.standard_normal(p.shape).astype(np.float32) * 0.2
        if name.endswith("running_var"):
            values = np.abs(values) + 0.5
        out[name] = values
    return out


def to_nemo(params, rng):
    """parakeet-mlx's parameters under NeMo's names and PyTorch layouts."""
    state = {}
    for name, value in params.items():
        parts = name.split(".")
        if ".dec_rnn.lstm." in name:
            prefix = ".".join(parts[:-2])
            layer, kind = parts[-2], parts[-1]
            if kind == "bias":
                bias_ih = rng.standard_normal(value.shape).astype(np.float32) * 0.2
                state[f"{prefix}.bias_ih_l{layer}"] = bias_ih
                state[f"{prefix}.bias_hh_l{layer}"] = value - bias_ih
            else:
                state[f"{prefix}.{LSTM_PARTS[kind]}_l{layer}"] = value
            continue
        if value.ndim == 3:
            value = value.transpose(0, 2, 1)
        elif value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        state[name] = value
        if name.endswith("batch_norm.running_var"):
            state[name.replace("running_var", "num_batches_tracked")] = np.array(7, dtype=np.int64)
    state["preprocessor.featurizer.window"] = rng.standard_normal(400).astype(np.float32)
    state["preprocessor.featurizer.fb"] = rng.standard_normal((1, 16, 257)).astype(np.float32)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


CTC_VOCAB = [f"▁c{i}" for i in range(12)]

CTC_CONFIG = {
    "target": "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
    "preprocessor": {
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "window": "hann",
        "features": 16,
        "n_fft": 512,
        "dither": 0.0,
        "pad_to": 0,
        "pad_value": 0.0,
        "preemph": 0.97,
    },
    "encoder": {
        "feat_in": 16,
        "n_layers": 1,
        "d_model": 32,
        "n_heads": 4,
        "ff_expansion_factor": 2,
        "subsampling_factor": 8,
        "subsampling": "dw_striding",
        "subsampling_conv_channels": 8,
        "self_attention_model": "rel_pos",
        "conv_kernel_size": 9,
        "pos_emb_max_len": 5000,
        "causal_downsampling": False,
        "use_bias": True,
        "xscaling": False,
        "conv_norm_type": "batch_norm",
    },
    "decoder": {"feat_in": 32, "num_classes": len(CTC_VOCAB), "vocabulary": CTC_VOCAB},
    "decoding": {"greedy": None},
}

# Hugging Face's module names -> NeMo's (= parakeet-mlx's), the inverse of
# transformers' NeMo conversion.
HF_TO_NEMO = [
    ("encoder.subsampling.layers.", "encoder.pre_encode.conv."),
    ("encoder.subsampling.linear.", "encoder.pre_encode.out."),
    (".conv.norm.", ".conv.batch_norm."),
    ("ctc_head.", "decoder.decoder_layers.0."),
    (".q_proj.", ".linear_q."),
    (".k_proj.", ".linear_k."),
    (".v_proj.", ".linear_v."),
    (".o_proj.", ".linear_out."),
    (".relative_k_proj.", ".linear_pos."),
    (".bias_u", ".pos_bias_u"),
    (".bias_v", ".pos_bias_v"),
    ("decoder.embedding.", "decoder.prediction.embed."),
    ("decoder.lstm.", "decoder.prediction.dec_rnn.lstm."),
    ("decoder.decoder_projector.", "joint.pred."),
    ("encoder_projector.", "joint.enc."),
    ("joint.head.", "joint.joint_net.2."),
]

TDT_CONFIG = {
    **CTC_CONFIG,
    "target": "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
    "model_defaults": {"tdt_durations": DURATIONS},
    "decoder": {
        "blank_as_pad": True,
        "vocab_size": len(CTC_VOCAB),
        "prednet": {"pred_hidden": 16, "pred_rnn_layers": 2},
    },
    "joint": {
        "num_classes": len(CTC_VOCAB),
        "vocabulary": CTC_VOCAB,
        "jointnet": {
            "joint_hidden": 16,
            "activation": "relu",
            "encoder_hidden": 32,
            "pred_hidden": 16,
        },
        "num_extra_outputs": len(DURATIONS),
    },
    "decoding": {"model_type": "tdt", "durations": DURATIONS, "greedy": None},
}

ENCODER = dict(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=4,
    intermediate_size=64,
    subsampling_conv_channels=8,
    num_mel_bins=16,
    conv_kernel_size=9,
    max_position_embeddings=5000,
    scale_input=False,
)


def randomize(model):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape) * 0.2)
                if name.endswith("running_var"):
                    t.abs_().add_(0.5)


def save_hf(model, hf_dir):
    """save_pretrained's folder plus the vocabulary and front end."""
    model.save_pretrained(hf_dir)
    ParakeetFeatureExtractor(feature_size=16).save_pretrained(hf_dir)
    tokenizer = Tokenizer(models.Unigram([(p, -1.0) for p in CTC_VOCAB], unk_id=0))
    tokenizer.add_special_tokens(["<pad>"])
    tokenizer.save(str(hf_dir / "tokenizer.json"))


def save_mlx(model, config, mlx_dir):
    """`model`'s weights under NeMo's names, loaded strictly into
    parakeet-mlx's model of `config` and saved in mlx-community's layout;
    returns NeMo's state dict."""
    mlx_model = from_config(json.loads(json.dumps(config)))
    nemo_state = {}
    for name, t in model.state_dict().items():
        for hf, nemo in HF_TO_NEMO:
            name = name.replace(hf, nemo)
        nemo_state[name] = t
    weights = {}
    for name, t in nemo_state.items():
        value = t.numpy()
        if name.endswith("num_batches_tracked"):
            continue
        if ".dec_rnn.lstm." in name:
            prefix, part = name.rsplit(".", 1)
            kind, layer = part.rsplit("_l", 1)
            key = f"{prefix}.{layer}." + {"weight_ih": "Wx", "weight_hh": "Wh"}.get(kind, "bias")
            weights[key] = weights.get(key, 0) + value
            continue
        if value.ndim == 3:
            value = value.transpose(0, 2, 1)
        elif value.ndim == 4:
            value = value.transpose(0, 2, 3, 1)
        weights[name] = value
    mlx_model.load_weights([(k, mx.array(v)) for k, v in weights.items()], strict=True)
    mlx_dir.mkdir(exist_ok=True)
    mx.save_safetensors(
        str(mlx_dir / "model.safetensors"),
        dict(tree_flatten(mlx_model.parameters())),
        metadata={"format": "mlx"},
    )
    (mlx_dir / "config.json").write_text(json.dumps(config, indent=2))
    return nemo_state


def make_tdt(out):
    torch.manual_seed(27)
    hf_config = ParakeetTDTConfig(
        vocab_size=len(CTC_VOCAB) + 1,
        blank_token_id=len(CTC_VOCAB),
        pad_token_id=0,
        decoder_hidden_size=16,
        num_decoder_layers=2,
        durations=DURATIONS,
        hidden_act="relu",
        encoder_config=ENCODER,
    )
    model = ParakeetForTDT(hf_config).eval()
    randomize(model)
    save_hf(model, out / "hf-tdt")
    save_mlx(model, TDT_CONFIG, out / "mlx-community-tdt")


def make_ctc(out):
    torch.manual_seed(26)
    hf_config = ParakeetCTCConfig(
        vocab_size=len(CTC_VOCAB) + 1, pad_token_id=len(CTC_VOCAB), encoder_config=ENCODER
    )
    model = ParakeetForCTC(hf_config).eval()
    randomize(model)
    save_hf(model, out / "hf-ctc")
    nemo_state = save_mlx(model, CTC_CONFIG, out / "mlx-community-ctc")
    write_nemo(out / "tiny-ctc.nemo", CTC_CONFIG, nemo_state)


def write_nemo(path, config, state):
    ckpt = io.BytesIO()
    torch.save(state, ckpt)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        add_member(tar, "./model_config.yaml", yaml.safe_dump(config, allow_unicode=True).encode())
        add_member(tar, "./model_weights.ckpt", ckpt.getvalue())
    # mtime 0: the same bytes on every run.
    with gzip.GzipFile(path, "wb", mtime=0) as nemo:
        nemo.write(archive.getvalue())


def add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main(out_dir):
    mx.set_default_device(mx.cpu)
    out = Path(out_dir)
    (out / "mlx-community").mkdir(parents=True, exist_ok=True)
    model = from_config(json.loads(json.dumps(CONFIG)))
    rng = np.random.default_rng(26)
    params = random_parameters(model, rng)
    model.update(tree_unflatten([(k, mx.array(v)) for k, v in params.items()]))
    mx.save_safetensors(
        str(out / "mlx-community" / "model.safetensors"),
        dict(tree_flatten(model.parameters())),
        metadata={"format": "mlx"},
    )
    (out / "mlx-community" / "config.json").write_text(json.dumps(CONFIG, indent=2))

    write_nemo(out / "tiny.nemo", CONFIG, to_nemo(params, rng))
    make_ctc(out)
    make_tdt(out)


if __name__ == "__main__":
    main(sys.argv[1])
