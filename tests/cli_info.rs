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
    if let Some(linked) = mlx::linked_openblas() {
        // The binary runs without LD_LIBRARY_PATH/LD_PRELOAD and still gets OpenBLAS.
        assert!(blas_line.ends_with(linked), "{blas_line}");
    }
    let isa_line = stdout
        .lines()
        .find(|l| l.starts_with("instruction set:"))
        .expect("instruction-set line");
    let active = mlx::kernels::active_isa().to_string();
    assert!(isa_line.contains(&active), "{isa_line}");
    // What serves each kind of product, as this process sees it too.
    let served = |kind: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} line: {stdout}"))
            .to_string()
    };
    if mlx::openblas_config().is_some() {
        assert!(
            served("f32 × f32, many rows").contains("OpenBLAS 0."),
            "{stdout}"
        );
    }
    let int8 = served("8-bit weights, many rows, int8 activations");
    match mlx::kernels::int8_products_isa() {
        Some(level) => assert!(
            int8.contains(&format!("own int8 kernel ({level}")),
            "{int8}"
        ),
        None => assert!(int8.contains("none here"), "{int8}"),
    }
    let attention = served("attention, many queries");
    assert_eq!(
        attention.contains("own fused kernel"),
        mlx::kernels::fused_attention_available(),
        "{attention}"
    );
}

#[test]
fn an_instruction_set_cap_shows_in_info_and_a_bad_one_is_an_error() {
    let capped = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .arg("info")
        .env("MLX_ASR_ISA", "baseline")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&capped.stdout);
    assert!(
        stdout.contains("instruction set: baseline (this CPU: ")
            && stdout.contains("cap: baseline"),
        "{stdout}"
    );
    // At the baseline no int8 or fused-attention kernel serves a product.
    assert!(
        stdout.contains("int8 activations     none here") && stdout.contains("+ own softmax"),
        "{stdout}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_pipeline"))
        .arg("info")
        .env("MLX_ASR_ISA", "avx9")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("MLX_ASR_ISA=avx9 is not an instruction-set level"),
        "{stderr}"
    );
}

#[test]
fn unknown_subcommand_is_a_usage_error_not_a_panic() {
    let out = pipeline(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}
