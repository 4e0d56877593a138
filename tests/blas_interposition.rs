//! On Linux CPU builds, MLX's matrix products (the encoder's, the prompt
//! passes') go to the OpenBLAS of the `scipy-openblas32` wheel that the build
//! fetched, not the reference BLAS bundled with the MLX wheel, and not a
//! system library: a fresh machine gets the fast GEMM with no system
//! package, and a binary that never calls into OpenBLAS itself still has
//! `cblas_sgemm` served by it, without LD_PRELOAD or LD_LIBRARY_PATH.

#[test]
#[cfg(target_os = "linux")]
fn cblas_sgemm_resolves_to_the_wheels_openblas() {
    if mlx::wheel() != "mlx-cpu" {
        return; // GPU builds keep MLX's own BLAS; their products run on the GPU.
    }
    let linked = mlx::linked_openblas().expect("a Linux CPU build links the OpenBLAS forwarder");
    let provider = mlx::blas_provider();
    assert_eq!(provider, linked, "cblas_sgemm is served by {provider}");
    assert!(
        provider.contains("/scipy-openblas32-") && provider.contains("/libmlx_asr_cblas-"),
        "{provider}"
    );
    let config = mlx::openblas_config().expect("OpenBLAS reports its build");
    assert!(config.starts_with("OpenBLAS 0.3."), "{config}");
}
