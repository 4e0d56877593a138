//! The `pipeline` binary as a user runs it.

use std::process::Command;

fn pipeline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .args(args)
        .output()
        .expect("pipeline binary runs")
}

#[test]
fn info_reports_mlx_version_and_the_blas_that_serves_sgemm() {
    let out = pipeline(&["info"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("MLX {}", mlx::version())),
        "{stdout}"
    );
    let blas_line = stdout
        .lines()
        .find(|l| l.starts_with("cblas_sgemm served by:"))
        .expect("BLAS line");
    if mlx::openblas_config().is_some() {
        // The binary runs without LD_LIBRARY_PATH/LD_PRELOAD and still gets OpenBLAS.
        assert!(blas_line.contains("openblas"), "{blas_line}");
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error_not_a_panic() {
    let out = pipeline(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}
