//! A tour of the MLX binding: build a lazy graph, evaluate it, read it back,
//! and see an MLX error arrive as a Rust `Err`.
//!
//! cargo run --release --example mlx_basics

use mlx::fast::{layer_norm, scaled_dot_product_attention, AttentionMask};
use mlx::{random, Array, Dtype};

fn main() -> mlx::Result<()> {
    println!(
        "MLX {} on {:?}, BLAS: {}",
        mlx::version(),
        mlx::default_device(),
        mlx::blas_provider()
    );

    // A [batch=1, heads=2, tokens=4, dim=8] causal self-attention.
    let x = random::normal(&[1, 2, 4, 8], Dtype::F32, 42)?;
    let normed = layer_norm(&x, None, None, 1e-5)?;
    let attended = scaled_dot_product_attention(
        &normed,
        &normed,
        &normed,
        8f32.sqrt().recip(),
        AttentionMask::Causal,
    )?;
    println!("attention output {:?}", attended);

    // Nothing has been computed yet; reading the values evaluates the graph.
    let first_row = attended.slice(&[0, 0, 0, 0], &[1, 1, 1, 8], &[1, 1, 1, 1])?;
    println!("first row: {:?}", first_row.to_vec::<f32>()?);

    // Shape errors are values, not aborts.
    let a = Array::ones(&[2, 3], Dtype::F32)?;
    match a.matmul(&a) {
        Ok(_) => unreachable!("a [2,3] x [2,3] product cannot succeed"),
        Err(e) => println!("as expected: {e}"),
    }
    Ok(())
}
