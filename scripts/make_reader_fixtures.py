#!/usr/bin/env python3
"""Writes the small checkpoints the converter READER tests read, each by the
reference library of its format, next to an "expected" sidecar written
independently of that format (safetensors.torch.save_file of the same tensors,
made contiguous), so the Rust tests compare every tensor exactly:

  torch/mixed.pt                  torch.save: every storage dtype, transposed,
                                  offset and storage-sharing views, a 0-d and an
                                  empty tensor, a Parameter, nested (Ordered)dicts
                                  incl. a module state_dict, tensors in lists and
                                  under int keys, one dict object referenced twice,
                                  torch.Size, set, bytes and other plain values
  torch/mixed.expected.safetensors  the same tensors by dotted name
  torch/legacy.pt                 torch.save(_use_new_zipfile_serialization=False)
  torch/mixed-legacy.pt           mixed.pt's object tree in that legacy format
  torch/legacy-training.pt        a legacy training checkpoint, as resemblyzer's:
                                  model_state plus an Adam optimizer_state
  torch/evil-system.pt            a pickle that would call os.system
  torch/evil-eval.pt              a pickle that would call builtins.eval
  sharded-bin/                    pytorch_model-0000k-of-00002.bin + index (torch.save)
  sharded-safetensors/            model-0000k-of-00002.safetensors + index (safetensors)
  sharded.expected.safetensors    the flat state dict both sharded folders hold
  ct2-<quantization>/             ctranslate2 ModelSpec.save of a small spec after
                                  optimize(<quantization>): model.bin + config.json,
                                  expected.safetensors = the variables as ctranslate2
                                  serialized them, int8/int16 weights divided by
                                  their scales (float32), aliases resolved

Needs: torch, safetensors, ctranslate2, numpy (pip). Usage:
  python scripts/make_reader_fixtures.py [converters/tests/fixtures/readers]
"""
import collections
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

# The commands the malicious fixtures would run if a reader executed them: a
# file appearing in the working directory proves execution.
MARKER = "pwned-by-pickle"


def mixed_checkpoint():
    """A torch.save payload and the contiguous tensors it must read back as."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 5, generator=g)
    shared = torch.arange(10, dtype=torch.int32)
    dtypes = {
        "f64": torch.randn(3, generator=g, dtype=torch.float64),
        "f32": torch.randn(2, 3, generator=g),
        "f16": torch.randn(2, 2, generator=g).half(),
        "bf16": torch.randn(3, generator=g).bfloat16(),
        "i64": torch.tensor([-(2**40), 0, 2**40 + 7]),
        "i32": torch.tensor([-5, 70000], dtype=torch.int32),
        "i16": torch.tensor([[-300, 2], [3, 32767]], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 1], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
    }
    views = {
        "transposed": base.t(),                   # strides (1, 5)
        "offset": base[1:, 2:],                   # storage offset 7, strides (5, 1)
        "every_other": base[::2, ::2],            # strides (10, 2)
        "shared_a": shared[:6].view(2, 3),        # one storage, two views
        "shared_b": shared[4:],
        "scalar": torch.tensor(2.5),              # 0-d
        "empty": torch.zeros(0, 3),
        "expanded": torch.tensor([1.0, 2.0]).expand(3, 2),  # stride 0
    }
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    repeated = {"w": torch.randn(2, generator=g)}
    param = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    payload = collections.OrderedDict(
        dtypes=dtypes,
        views=views,
        model=module.state_dict(),  # an OrderedDict carrying _metadata (BUILD)
        param=param,
        same_tensor_twice=[param, param],
        by_int={0: {"exp_avg": torch.ones(2)}},
        first=repeated,
        second=repeated,             # one object: BINGET of a memoized dict
        plain={
            "int": 7, "neg": -3, "big": 2**40, "float": 0.25, "str": "héllo",
            "bytes": b"\x00\xff", "none": None, "true": True, "list": [1, 2],
            "tuple": (1, "a"), "set": {3}, "size": base.shape,
        },
    )
    expected = {}

    def flatten(prefix, value):
        if isinstance(value, torch.Tensor):
            expected[prefix] = value.detach().contiguous().clone()
        elif isinstance(value, dict):
            for k, v in value.items():
                flatten(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                flatten(f"{prefix}.{i}", v)

    flatten("", payload)
    return payload, expected


class CallsSystem:
    def __reduce__(self):
        return (os.system, (f"echo pwned > {MARKER}",))


class CallsEval:
    def __reduce__(self):
        return (eval, (f"open({MARKER!r}, 'w')",))


def write_legacy_training(dest):
    g = torch.Generator().manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4, generator=g)).sum().backward()
    opt.step()
    torch.save({"step": 3, "model_state": model.state_dict(), "optimizer_state": opt.state_dict()},
               dest / "legacy-training.pt", _use_new_zipfile_serialization=False)


def write_torch(dest):
    dest.mkdir()
    payload, expected = mixed_checkpoint()
    torch.save(payload, dest / "mixed.pt")
    torch.save(payload, dest / "mixed-legacy.pt", _use_new_zipfile_serialization=False)
    save_file(expected, dest / "mixed.expected.safetensors")
    torch.save({"w": torch.ones(2)}, dest / "legacy.pt", _use_new_zipfile_serialization=False)
    write_legacy_training(dest)
    torch.save({"w": torch.ones(1), "x": CallsSystem()}, dest / "evil-system.pt")
    torch.save({"w": torch.ones(1), "x": CallsEval()}, dest / "evil-eval.pt")


def write_sharded(dest):
    g = torch.Generator().manual_seed(1)
    state = {
        "embed.weight": torch.randn(5, 4, generator=g),
        "layer.0.weight": torch.randn(4, 4, generator=g).half(),
        "layer.0.bias": torch.randn(4, generator=g).bfloat16(),
        "layer.1.weight": torch.randn(4, 4, generator=g),
        "head.weight": torch.randn(3, 4, generator=g),
        "steps": torch.tensor([12]),
    }
    save_file(state, dest / "sharded.expected.safetensors")
    names = list(state)
    shards = [names[:3], names[3:]]
    for folder, ext in (("sharded-bin", "bin"), ("sharded-safetensors", "safetensors")):
        (dest / folder).mkdir()
        stem = "pytorch_model" if ext == "bin" else "model"
        weight_map = {}
        for k, keys in enumerate(shards, start=1):
            file = f"{stem}-{k:05d}-of-{len(shards):05d}.{ext}"
            part = {n: state[n] for n in keys}
            if ext == "bin":
                torch.save(part, dest / folder / file)
            else:
                save_file(part, dest / folder / file)
            weight_map.update({n: file for n in keys})
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (dest / folder / f"{stem}.{ext}.index.json").write_text(json.dumps(index, indent=2))


def ct2_spec():
    from ctranslate2.specs import common_spec, model_spec

    class Layers(model_spec.LayerSpec):
        def __init__(self):
            self.embeddings = common_spec.EmbeddingsSpec()
            self.conv = common_spec.Conv1DSpec()
            self.layer = [common_spec.LinearSpec() for _ in range(2)]
            self.tied = common_spec.LinearSpec()
            self.norm = common_spec.LayerNormSpec()
            self.num_heads = np.dtype("int16").type(4)
            self.pre_norm = True
            self.ratio = 0.5
            self.activation_name = "gelu"

    class ReaderSpec(model_spec.ModelSpec):
        def __init__(self):
            super().__init__()
            self.model = Layers()

        @property
        def name(self):
            return "ReaderTestSpec"

        @property
        def revision(self):
            return 2

        def get_default_config(self):
            return model_spec.ModelConfig(note="reader fixture")

    rng = np.random.default_rng(2)
    spec = ReaderSpec()
    m = spec.model
    m.embeddings.weight = rng.standard_normal((7, 6), dtype=np.float32)
    m.conv.weight = rng.standard_normal((4, 3, 3), dtype=np.float32)
    m.conv.bias = rng.standard_normal(4, dtype=np.float32)
    for layer in m.layer:
        layer.weight = rng.standard_normal((5, 6), dtype=np.float32)
        layer.bias = rng.standard_normal(5, dtype=np.float32)
    m.layer[1].weight[2] = 0  # an all-zero row: ctranslate2 gives it scale 1
    # Equal to embeddings: ctranslate2 stores an alias (and aliases its scale).
    m.tied.weight = m.embeddings.weight.copy()
    m.norm.gamma = rng.standard_normal(6, dtype=np.float32)
    m.norm.beta = torch.randn(6, generator=torch.Generator().manual_seed(3)).bfloat16()
    return spec


def ct2_expected(spec):
    """The spec's variables as a reader must return them."""
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                   "int8": torch.int8, "int16": torch.int16, "int32": torch.int32}
    raw, aliases = {}, {}
    for name, value in spec.variables(ordered=True):
        if isinstance(value, str):
            aliases[name] = value
            continue
        # The bytes ctranslate2 serializes, reinterpreted with their dtype.
        data = bytearray(value.to_bytes())
        flat = torch.frombuffer(data, dtype=torch_dtype[value.dtype])
        raw[name] = flat.reshape(tuple(value.shape)).clone()
    out = {}
    for name, tensor in raw.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw:
            continue
        scale = raw.get(name + "_scale")
        if scale is not None and tensor.dtype in (torch.int8, torch.int16):
            q = tensor.numpy().reshape(tensor.shape[0], -1).astype(np.float32)
            s = scale.numpy().astype(np.float32).reshape(-1, 1)
            tensor = torch.from_numpy((q / s).reshape(tuple(tensor.shape)))
        out[name] = tensor
    for alias, target in aliases.items():
        out[alias] = out[target].clone()
    return out


def write_ct2(dest):
    for quantization in ["float32", "float16", "bfloat16", "int8", "int8_float16", "int16"]:
        spec = ct2_spec()
        spec.validate()
        spec.optimize(quantization=quantization)
        out = dest / f"ct2-{quantization}"
        out.mkdir()
        spec.save(str(out))
        save_file(ct2_expected(spec), out / "expected.safetensors")


def main(dest):
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    write_torch(dest / "torch")
    write_sharded(dest)
    write_ct2(dest)
    (dest / "README").write_text(
        "Reader fixtures written by scripts/make_reader_fixtures.py; see its docstring.\n"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "converters/tests/fixtures/readers")
