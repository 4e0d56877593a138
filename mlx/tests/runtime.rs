//! The runtime around the ops: BLAS provider, memory statistics and limits,
//! compile, eval/async_eval, devices, version, and use from several threads.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use mlx::{Array, Device, Dtype, Error};

#[test]
fn cblas_sgemm_is_served_by_the_linked_openblas() {
    let provider = mlx::blas_provider();
    assert!(
        !provider.is_empty(),
        "no shared object serves cblas_sgemm in this process"
    );
    if cfg!(target_os = "linux") && mlx::wheel() == "mlx-cpu" {
        assert_eq!(Some(provider.as_str()), mlx::linked_openblas());
        let config = mlx::openblas_config().expect("OpenBLAS reports its build");
        assert!(config.starts_with("OpenBLAS "), "{config}");
    }
    // Whichever BLAS it is, a GEMM large enough to go through it is right.
    let (m, k, n) = (48, 40, 36);
    let a = data(1, m * k);
    let b = data(2, k * n);
    let e = matmul_naive(&to_f64(&a), &to_f64(&b), m, k, n);
    let r = arr(&a, &[m as i32, k as i32])
        .matmul(&arr(&b, &[k as i32, n as i32]))
        .unwrap();
    check(
        &r,
        &[m as i32, n as i32],
        &e,
        1e-5,
        1e-5,
        "GEMM through BLAS",
    );
}

#[test]
fn version_is_a_release_number() {
    let v = mlx::version();
    let parts: Vec<&str> = v.split('.').collect();
    assert!(parts.len() >= 3, "{v}");
    assert!(parts[..2].iter().all(|p| p.parse::<u32>().is_ok()), "{v}");
}

/// The only test here that resets or changes allocator-wide settings.
#[test]
fn memory_stats_limits_and_cache() {
    mlx::reset_peak_memory();
    let n = 1 << 22; // 16 MiB of f32
    let big = Array::zeros(&[n], Dtype::F32)
        .unwrap()
        .add_scalar(1.0)
        .unwrap();
    big.eval().unwrap();
    let s = mlx::memory_stats().unwrap();
    assert!(s.active >= n as usize * 4, "{s:?}");
    assert!(s.peak >= s.active, "{s:?}");
    assert!(s.limit > 0, "{s:?}");
    // The data is really there.
    let total = big.sum(&[], false).unwrap().item::<f32>().unwrap();
    assert_eq!(total, n as f32);
    drop(big);
    let after = mlx::memory_stats().unwrap();
    assert!(
        after.peak >= s.active,
        "peak {after:?} below earlier active {s:?}"
    );

    mlx::clear_cache();
    // Limits: each setter returns the previous value; restore them.
    let old_cache = mlx::set_cache_limit(1 << 20);
    assert_eq!(mlx::set_cache_limit(old_cache), 1 << 20);
    let old_mem = mlx::set_memory_limit(s.limit);
    assert_eq!(old_mem, s.limit);
    assert_eq!(mlx::memory_stats().unwrap().limit, s.limit);
}

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name in parentheses, which may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(7).unwrap().parse().unwrap()
}

const REFAULT_CHILD: &str = "MLX_TEST_REFAULT_CHILD";

/// In a fresh process (glibc's thresholds move with what a process freed
/// before): the page faults of filling an 8 MiB buffer a second time, after
/// freeing the first, with or without `keep_freed_memory`.
fn refaults(keep: bool) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "freed_buffers_come_back_without_new_pages",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(REFAULT_CHILD, if keep { "keep" } else { "default" })
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    // The harness may print the test's name on the same line first.
    let count = stdout.lines().find_map(|l| l.split("refaults ").nth(1));
    let count = count.unwrap_or_else(|| panic!("no count in {stdout}"));
    count.trim().parse().unwrap()
}

#[test]
fn freed_buffers_come_back_without_new_pages() {
    const BYTES: usize = 8 << 20;
    if let Ok(mode) = std::env::var(REFAULT_CHILD) {
        if mode == "keep" {
            assert!(mlx::keep_freed_memory());
        }
        let fill = || std::hint::black_box(vec![1u8; BYTES]);
        drop(fill());
        let before = minor_faults();
        drop(fill());
        println!("refaults {}", minor_faults() - before);
        return;
    }
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(!mlx::keep_freed_memory());
        return;
    }
    let pages = (BYTES / 4096) as u64;
    let (default, kept) = (refaults(false), refaults(true));
    // glibc maps the size it just freed afresh; kept, its heap serves it.
    assert!(
        default > pages * 9 / 10,
        "{default} faults of {pages} pages"
    );
    assert!(kept < pages / 10, "{kept} faults of {pages} pages kept");
}

fn affine_exp(xs: &[Array]) -> mlx::Result<Vec<Array>> {
    Ok(vec![xs[0].mul_scalar(2.0)?.add_scalar(1.0)?.exp()?])
}

/// Huge-page advice moves no value, and leaves buffers without a whole
/// 2 MiB page alone. Whether the OS grants the pages depends on its
/// settings (transparent huge pages off, kernels before 6.1), so a large
/// buffer's answer is only checked for what it says about the pages: when
/// granted, the process holds huge pages.
#[test]
fn huge_page_advice_keeps_values() {
    let values = rand_vec(80, 3 << 20, -1.0, 1.0);
    let lazy = arr(&values, &[3 << 10, 1 << 10]).mul_scalar(2.0).unwrap();
    let granted = lazy.prefer_huge_pages().unwrap();
    let doubled: Vec<f32> = values.iter().map(|v| v * 2.0).collect();
    assert_eq!(lazy.to_vec::<f32>().unwrap(), doubled);
    if granted {
        let smaps = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let huge_kb: u64 = smaps
            .lines()
            .find_map(|l| l.strip_prefix("AnonHugePages:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert!(
            huge_kb >= 2048,
            "granted, but AnonHugePages is {huge_kb} kB"
        );
    }
    let small = arr(&values[..1000], &[1000]);
    assert!(!small.prefer_huge_pages().unwrap(), "under 2 MiB");
    assert_eq!(small.to_vec::<f32>().unwrap(), values[..1000]);
}

#[test]
fn compiled_function_equals_uncompiled_and_naive() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let f = mlx::compile(
        move |xs| {
            counter.fetch_add(1, Ordering::SeqCst);
            affine_exp(xs)
        },
        false,
    )
    .unwrap();
    let x = rand_vec(3, 12, -1.0, 1.0);
    let a = arr(&x, &[3, 4]);
    let out = f.call(&[&a]).unwrap();
    assert_eq!(out.len(), 1);
    let expected: Vec<f64> = x.iter().map(|&v| (2.0 * v as f64 + 1.0).exp()).collect();
    check(&out[0], &[3, 4], &expected, 1e-6, 1e-6, "compiled");
    let plain = affine_exp(std::slice::from_ref(&a)).unwrap();
    assert_eq!(read(&out[0]), read(&plain[0]), "compiled vs uncompiled");
    let traced = calls.load(Ordering::SeqCst);
    assert!(traced >= 1);

    // Same shape, new values: the trace is reused.
    let y = rand_vec(4, 12, -1.0, 1.0);
    let out = f.call(&[&arr(&y, &[3, 4])]).unwrap();
    let expected: Vec<f64> = y.iter().map(|&v| (2.0 * v as f64 + 1.0).exp()).collect();
    check(
        &out[0],
        &[3, 4],
        &expected,
        1e-6,
        1e-6,
        "compiled, second call",
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        traced,
        "retraced for the same shape"
    );

    // Another shape works too (traced again).
    let z = rand_vec(5, 5, -1.0, 1.0);
    let out = f.call(&[&arr(&z, &[5])]).unwrap();
    let expected: Vec<f64> = z.iter().map(|&v| (2.0 * v as f64 + 1.0).exp()).collect();
    check(&out[0], &[5], &expected, 1e-6, 1e-6, "compiled, new shape");
}

#[test]
fn compiled_function_with_several_inputs_and_outputs() {
    let f = mlx::compile(
        |xs| {
            let s = xs[0].add(&xs[1])?;
            let p = xs[0].multiply(&xs[1])?.sum(&[-1], false)?;
            Ok(vec![s, p])
        },
        true,
    )
    .unwrap();
    for (seed, shape) in [(6u64, [2, 3]), (7, [4, 5])] {
        let n = numel(&shape);
        let (a, b) = (data(seed, n), data(seed + 10, n));
        let out = f.call(&[&arr(&a, &shape), &arr(&b, &shape)]).unwrap();
        assert_eq!(out.len(), 2);
        let sum: Vec<f64> = a.iter().zip(&b).map(|(&p, &q)| (p + q) as f64).collect();
        check(&out[0], &shape, &sum, 1e-7, 1e-6, "shapeless sum");
        let rows = shape[1] as usize;
        let dots: Vec<f64> = (0..shape[0] as usize)
            .map(|r| {
                (0..rows)
                    .map(|c| a[r * rows + c] as f64 * b[r * rows + c] as f64)
                    .sum()
            })
            .collect();
        check(
            &out[1],
            &shape[..1],
            &dots,
            1e-6,
            1e-5,
            "shapeless row dots",
        );
    }
}

#[test]
fn compiled_closure_errors_and_panics_come_back_as_err() {
    // The closure's own error comes back unchanged (variant and message).
    let f = mlx::compile(|_xs| Err(Error::Mlx("deliberate failure".into())), false).unwrap();
    let a = arr(&[1.0, 2.0], &[2]);
    match f.call(&[&a]) {
        Err(Error::Mlx(msg)) => assert_eq!(msg, "deliberate failure"),
        other => panic!("expected Err(Mlx(\"deliberate failure\")), got {other:?}"),
    }
    // Calling again still fails cleanly.
    assert!(f.call(&[&a]).is_err());
    let d = mlx::compile(
        |xs| Ok(vec![Array::scalar(xs[0].to_vec::<f64>()?[0])?]),
        false,
    )
    .unwrap();
    assert!(matches!(
        d.call(&[&a]),
        Err(Error::DtypeMismatch {
            array: Dtype::F32,
            requested: Dtype::F64
        })
    ));

    // An MLX error raised inside the closure (a shape mismatch).
    let g = mlx::compile(|xs| Ok(vec![xs[0].matmul(&xs[0])?]), false).unwrap();
    let msg = err_text(g.call(&[&arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])]));
    assert!(msg.starts_with("MLX: [matmul]"), "{msg}");
    // The same compiled function works for valid input afterwards.
    let sq = g.call(&[&arr(&[1.0, 2.0, 3.0, 4.0], &[2, 2])]).unwrap();
    check(
        &sq[0],
        &[2, 2],
        &[7.0, 10.0, 15.0, 22.0],
        0.0,
        0.0,
        "g after error",
    );
    // Reading values while tracing is refused by MLX, as an error.
    let e = mlx::compile(|xs| Ok(vec![Array::scalar(xs[0].item::<f32>()?)?]), false).unwrap();
    let msg = err_text(e.call(&[&Array::scalar(1.0f32).unwrap()]));
    assert!(msg.contains("[eval]"), "{msg}");

    let p = mlx::compile(
        |xs: &[Array]| -> mlx::Result<Vec<Array>> {
            if xs.len() == 1 {
                panic!("deliberate panic inside a compiled closure");
            }
            Ok(vec![])
        },
        false,
    )
    .unwrap();
    match p.call(&[&a]) {
        Err(Error::Callback(msg)) => {
            assert!(msg.contains("panicked"), "{msg}");
            assert!(msg.contains("deliberate panic"), "{msg}");
        }
        other => panic!("expected Err(Callback(..)), got {other:?}"),
    }
    // A successful call after a failed one is not handed a stale error.
    let ok = mlx::compile(|xs| Ok(vec![xs[0].negative()?]), false).unwrap();
    let out = ok.call(&[&a]).unwrap();
    check(&out[0], &[2], &[-1.0, -2.0], 0.0, 0.0, "after failures");
    // The process is still healthy.
    assert_eq!(read(&a.add_scalar(1.0).unwrap()), vec![2.0, 3.0]);
}

#[test]
fn compiled_functions_can_be_dropped_and_recreated() {
    for round in 0..3 {
        let k = round as f64;
        let f = mlx::compile(move |xs| Ok(vec![xs[0].add_scalar(k)?]), false).unwrap();
        let out = f.call(&[&arr(&[1.0, 2.0], &[2])]).unwrap();
        check(&out[0], &[2], &[1.0 + k, 2.0 + k], 0.0, 0.0, "recreated");
    }
}

#[test]
fn eval_and_async_eval() {
    let x = data(8, 64);
    let a = arr(&x, &[8, 8]);
    let s = a.exp().unwrap();
    let t = a.matmul(&a).unwrap();
    let u = s.add(&t).unwrap();
    mlx::eval(&[&s, &t, &u]).unwrap();
    mlx::eval(&[]).unwrap();
    let mm = matmul_naive(&to_f64(&x), &to_f64(&x), 8, 8, 8);
    let expected: Vec<f64> = (0..64).map(|i| (x[i] as f64).exp() + mm[i]).collect();
    check(&u, &[8, 8], &expected, 1e-5, 1e-5, "after eval");

    let v = a.sin().unwrap().sum(&[0], false).unwrap();
    let w = a.cos().unwrap().max(&[1], false).unwrap();
    mlx::async_eval(&[&v, &w]).unwrap();
    let (gs, _) = reduce_groups(&to_f64(&x), &[8, 8], &[0], false);
    let vs: Vec<f64> = gs.iter().map(|g| g.iter().map(|v| v.sin()).sum()).collect();
    check(&v, &[8], &vs, 1e-6, 1e-5, "after async_eval");
    let (gw, _) = reduce_groups(&to_f64(&x), &[8, 8], &[1], false);
    let ws: Vec<f64> = gw
        .iter()
        .map(|g| g.iter().map(|v| v.cos()).fold(f64::MIN, f64::max))
        .collect();
    check(&w, &[8], &ws, 1e-6, 1e-5, "after async_eval");
    // Evaluating twice and eval of an already evaluated array are fine.
    u.eval().unwrap();
    mlx::async_eval(&[&u]).unwrap();
    u.eval().unwrap();
}

#[test]
fn devices() {
    assert!(mlx::is_available(Device::Cpu));
    if mlx::is_available(Device::Gpu) {
        eprintln!("GPU build: default device is {:?}", mlx::default_device());
        return;
    }
    assert_eq!(mlx::default_device(), Device::Cpu);
    let msg = err_text(mlx::set_default_device(Device::Gpu));
    assert!(
        msg.contains("Gpu") && msg.contains("not available"),
        "{msg}"
    );
    assert_eq!(mlx::default_device(), Device::Cpu);
    mlx::set_default_device(Device::Cpu).unwrap();
    assert_eq!(mlx::default_device(), Device::Cpu);
}

#[test]
fn arrays_move_between_threads_and_threads_compute_concurrently() {
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let x = data(100 + t, 6 * 10);
            let a = arr(&x, &[6, 10]); // built here, used there
            std::thread::spawn(move || {
                let mut last = Vec::new();
                for _ in 0..20 {
                    last = read(&a.softmax(&[-1], false).unwrap());
                }
                (x, last)
            })
        })
        .collect();
    for h in handles {
        let (x, got) = h.join().unwrap();
        let expected: Vec<f64> = to_f64(&x).chunks(10).flat_map(softmax_naive).collect();
        assert_close(&got, &expected, 1e-7, 1e-5, "softmax in a thread");
    }
}
