//! A binary that never calls into OpenBLAS directly must still have
//! `cblas_sgemm` served by OpenBLAS (not the wheel's reference BLAS) when the
//! build linked it — without LD_PRELOAD or LD_LIBRARY_PATH.

#[test]
fn cblas_sgemm_resolves_to_the_linked_openblas() {
    let provider = mlx::blas_provider();
    match mlx::linked_openblas() {
        Some(path) => {
            assert!(
                provider.contains("openblas"),
                "cblas_sgemm served by {provider}, expected {path}"
            );
        }
        None => eprintln!("skipped: this build linked no OpenBLAS (provider: {provider})"),
    }
}
