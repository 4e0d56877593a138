#!/usr/bin/env python3
"""The Python MLX side of `cargo bench --bench mlx_binding`: the same
measurements as benches/mlx_binding/binding.rs, printed as one JSON object
keyed like BenchRow::key."""
import json
import math
import time

import mlx.core as mx

D, HEADS, CONTEXT, LAYERS = 384, 6, 128, 4


def median_secs(reps, f):
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def gemm_gflops(n):
    a = mx.random.normal((n, n), key=mx.random.key(1))
    b = mx.random.normal((n, n), key=mx.random.key(2))
    mx.eval(a, b)
    secs = median_secs(5, lambda: mx.eval(a @ b))
    return 2 * n**3 / secs / 1e9


def dispatch_eager_us(n=2000):
    a, b = mx.array(1.0), mx.array(2.0)

    def run():
        for _ in range(n):
            mx.eval(a + b)

    return median_secs(5, run) / n * 1e6


def dispatch_lazy_us(n=2000):
    one = mx.array(1.0)

    def run():
        x = one
        for _ in range(n):
            x = x + one
        mx.eval(x)

    return median_secs(5, run) / n * 1e6


def gelu(x):
    return 0.5 * x * (1 + mx.erf(x * 0.7071067811865476))


def make_block(seed):
    def w(shape, s):
        return mx.random.normal(shape, key=mx.random.key(seed * 100 + s)) * 0.02

    cache = lambda s: mx.random.normal((1, HEADS, CONTEXT, D // HEADS), key=mx.random.key(seed * 100 + s))
    return dict(
        ln1=(mx.ones((D,)), mx.zeros((D,))), wq=w((D, D), 1), wk=w((D, D), 2), wv=w((D, D), 3),
        wo=w((D, D), 4), ln2=(mx.ones((D,)), mx.zeros((D,))), w1=w((D, 4 * D), 5),
        w2=w((4 * D, D), 6), k_cache=cache(7), v_cache=cache(8),
    )


def block_step(b, x):
    heads = lambda t: t.reshape(1, 1, HEADS, D // HEADS).transpose(0, 2, 1, 3)
    h = mx.fast.layer_norm(x, b["ln1"][0], b["ln1"][1], 1e-5)
    q = heads(h @ b["wq"])
    k = mx.concatenate([b["k_cache"], heads(h @ b["wk"])], axis=2)
    v = mx.concatenate([b["v_cache"], heads(h @ b["wv"])], axis=2)
    attn = mx.fast.scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(D // HEADS))
    x = x + attn.transpose(0, 2, 1, 3).reshape(1, 1, D) @ b["wo"]
    h = mx.fast.layer_norm(x, b["ln2"][0], b["ln2"][1], 1e-5)
    return x + gelu(h @ b["w1"]) @ b["w2"]


def transformer_step_ms():
    blocks = [make_block(i) for i in range(LAYERS)]
    mx.eval(blocks)
    x0 = mx.random.normal((1, 1, D), key=mx.random.key(9))

    def run():
        x = x0
        for b in blocks:
            x = block_step(b, x)
        mx.eval(x)

    return median_secs(20, run) * 1e3


def matvec_us(bits, n=200):
    x = mx.random.normal((1, D), key=mx.random.key(10))
    w = mx.random.normal((4 * D, D), key=mx.random.key(11))
    mx.eval(x, w)
    if bits is None:
        wt = w.T

        def run():
            for _ in range(n):
                mx.eval(x @ wt)
    else:
        q, s, b = mx.quantize(w, group_size=64, bits=bits)
        mx.eval(q, s, b)

        def run():
            for _ in range(n):
                mx.eval(mx.quantized_matmul(x, q, s, b, transpose=True, group_size=64, bits=bits))

    return median_secs(5, run) / n * 1e6


if __name__ == "__main__":
    mx.set_default_device(mx.cpu)
    print(json.dumps({
        "dispatch_eager_us": dispatch_eager_us(),
        "dispatch_lazy_us": dispatch_lazy_us(),
        "gemm_1024_gflops": gemm_gflops(1024),
        "gemm_2048_gflops": gemm_gflops(2048),
        "transformer_step_ms": transformer_step_ms(),
        "matvec_f32_us": matvec_us(None),
        "matvec_q8_us": matvec_us(8),
        "matvec_q4_us": matvec_us(4),
    }))
