//! The MLX build a binary runs on, as `pipeline info` and the binding
//! benchmark print it: versions, devices, the CPU kernels' instruction set
//! and what serves each kind of product.

use std::fmt::Write as _;

use mlx::kernels::Isa;

/// The MLX version, devices and the BLAS that serves `cblas_sgemm`, one
/// line each.
pub fn report() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "MLX {}", mlx::version());
    let _ = writeln!(out, "default device: {:?}", mlx::default_device());
    let _ = writeln!(
        out,
        "gpu available: {}",
        mlx::is_available(mlx::Device::Gpu)
    );
    let _ = writeln!(
        out,
        "instruction set: {} (this CPU: {}, cap: {})",
        mlx::kernels::active_isa(),
        mlx::kernels::supported_isa(),
        match mlx::kernels::isa_cap() {
            mlx::kernels::Isa::Avx512Vnni => "none".to_string(),
            cap => format!("{cap}, from MLX_ASR_ISA or the API"),
        }
    );
    let _ = writeln!(out, "cblas_sgemm served by: {}", mlx::blas_provider());
    let _ = match mlx::openblas_config() {
        Some(config) => writeln!(out, "OpenBLAS: {config}"),
        None => writeln!(out, "OpenBLAS: not linked (reference BLAS, slow fp32 GEMM)"),
    };
    let _ = writeln!(out, "products on the CPU:");
    for (kind, served_by) in product_paths() {
        let _ = writeln!(out, "  {kind:<46} {served_by}");
    }
    out
}

/// Each kind of product a Whisper run makes and what computes it here now.
fn product_paths() -> Vec<(&'static str, String)> {
    let kernels = mlx::decoder_step::decoder_layer_steps_available();
    let isa = mlx::kernels::active_isa();
    let gemm = match mlx::openblas_config() {
        Some(config) => config
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        None => "the reference BLAS".to_string(),
    };
    let ours = |what: &str| {
        if kernels {
            format!("{what} ({isa})")
        } else {
            "MLX's own ops (kernels off)".to_string()
        }
    };
    let int8 = match mlx::kernels::int8_products_isa() {
        Some(Isa::Avx2) => "own int8 kernel (avx2, vpmaddwd)".to_string(),
        Some(level) => format!("own int8 kernel ({level}, vpdpbusd)"),
        None => format!("none here: as 8-bit weights, f32 ({isa})"),
    };
    let attention = if mlx::kernels::fused_attention_available() {
        format!("own fused kernel ({isa})")
    } else {
        format!("{gemm} + own softmax")
    };
    vec![
        ("f32 × f32, many rows (encoder, prompts)", gemm.clone()),
        (
            "8-bit weights, many rows, f32 activations",
            format!("{}, then {gemm}", ours("own dequantizer")),
        ),
        ("8-bit weights, many rows, int8 activations", int8),
        (
            "few rows (decoder steps; f32, f16, 8/4-bit)",
            ours("own kernel"),
        ),
        ("attention, many queries", attention),
    ]
}
