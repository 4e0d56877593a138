//! Reductions over axes (with keepdims and negative axes), arg-reductions,
//! cumsum, softmax, log_softmax and GELU, against naive Rust loops.

mod common;

use common::*;
use mlx::{Array, Dtype, Reduction};

type Method = fn(&Array, &[i32], bool) -> mlx::Result<Array>;

fn sum(g: &[f64]) -> f64 {
    g.iter().sum()
}
fn mean(g: &[f64]) -> f64 {
    sum(g) / g.len() as f64
}
fn max(g: &[f64]) -> f64 {
    g.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
}
fn min(g: &[f64]) -> f64 {
    g.iter().cloned().fold(f64::INFINITY, f64::min)
}
fn prod(g: &[f64]) -> f64 {
    g.iter().product()
}
fn var(g: &[f64]) -> f64 {
    let m = mean(g);
    g.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / g.len() as f64
}

const AXES: &[&[i32]] = &[&[], &[0], &[1], &[2], &[-1], &[0, 2], &[-3, -2], &[0, 1, 2]];

type Naive = fn(&[f64]) -> f64;

fn float_reductions() -> Vec<(Reduction, Method, Naive)> {
    vec![
        (Reduction::Sum, Array::sum, sum),
        (Reduction::Mean, Array::mean, mean),
        (Reduction::Max, Array::max, max),
        (Reduction::Min, Array::min, min),
        (Reduction::Prod, Array::prod, prod),
        (Reduction::LogSumExp, Array::logsumexp, logsumexp_naive),
        (Reduction::Var, Array::var, var),
    ]
}

#[test]
fn float_reductions_over_axes_with_and_without_keepdims() {
    let shape = [2, 3, 4];
    // Values in [0.5, 1.5) keep the 24-element product well scaled.
    let x = rand_vec(5, 24, 0.5, 1.5);
    let a = arr(&x, &shape);
    for (op, method, naive) in float_reductions() {
        for &axes in AXES {
            for keepdims in [false, true] {
                let (groups, out_shape) = reduce_groups(&to_f64(&x), &shape, axes, keepdims);
                let expected: Vec<f64> = groups.iter().map(|g| naive(g)).collect();
                let what = format!("{op:?} axes={axes:?} keepdims={keepdims}");
                check(
                    &method(&a, axes, keepdims).unwrap(),
                    &out_shape,
                    &expected,
                    1e-6,
                    1e-5,
                    &what,
                );
                check(
                    &a.reduce(op, axes, keepdims).unwrap(),
                    &out_shape,
                    &expected,
                    1e-6,
                    1e-5,
                    &what,
                );
            }
        }
    }
}

#[test]
fn reductions_of_a_transposed_input() {
    // [3, 4, 2] viewed as [2, 4, 3] by permuting axes (non-contiguous).
    let x = data(8, 24);
    let (xp, ps) = permute(&x, &[3, 4, 2], &[2, 1, 0]);
    let a = arr(&x, &[3, 4, 2]).transpose(&[2, 1, 0]).unwrap();
    assert_eq!(a.shape(), ps);
    for (op, method, naive) in float_reductions() {
        if op == Reduction::Prod {
            continue;
        }
        for axes in [&[1][..], &[-1], &[0, 2]] {
            let (groups, out_shape) = reduce_groups(&to_f64(&xp), &ps, axes, false);
            let expected: Vec<f64> = groups.iter().map(|g| naive(g)).collect();
            check(
                &method(&a, axes, false).unwrap(),
                &out_shape,
                &expected,
                1e-6,
                1e-5,
                &format!("{op:?} of transposed, axes={axes:?}"),
            );
        }
    }
}

#[test]
fn integer_sum_and_max_keep_integer_dtypes() {
    let x: Vec<i32> = (0..12).map(|i| (i * 7 % 11) - 5).collect();
    let a = Array::from_slice(&x, &[3, 4]).unwrap();
    let (groups, shape) = reduce_groups(&x, &[3, 4], &[1], false);
    let r = a.sum(&[1], false).unwrap();
    assert_eq!((r.shape(), r.dtype()), (shape.clone(), Dtype::I32));
    let expected: Vec<i32> = groups.iter().map(|g| g.iter().sum()).collect();
    assert_eq!(r.to_vec::<i32>().unwrap(), expected);
    let r = a.max(&[1], false).unwrap();
    assert_eq!(r.dtype(), Dtype::I32);
    let expected: Vec<i32> = groups.iter().map(|g| *g.iter().max().unwrap()).collect();
    assert_eq!(r.to_vec::<i32>().unwrap(), expected);
}

#[test]
fn all_and_any_over_axes() {
    let shape = [2, 3, 2];
    let x: Vec<bool> = (0..12).map(|i| (i * 5 % 7) % 3 != 0).collect();
    let a = Array::from_slice(&x, &shape).unwrap();
    for &axes in &[&[][..], &[0], &[-1], &[0, 2], &[1]] {
        for keepdims in [false, true] {
            let (groups, out_shape) = reduce_groups(&x, &shape, axes, keepdims);
            let all: Vec<bool> = groups.iter().map(|g| g.iter().all(|&b| b)).collect();
            let any: Vec<bool> = groups.iter().map(|g| g.iter().any(|&b| b)).collect();
            let r = a.all(axes, keepdims).unwrap();
            assert_eq!((r.shape(), r.dtype()), (out_shape.clone(), Dtype::Bool));
            assert_eq!(r.to_vec::<bool>().unwrap(), all, "all {axes:?}");
            let r = a.any(axes, keepdims).unwrap();
            assert_eq!((r.shape(), r.dtype()), (out_shape.clone(), Dtype::Bool));
            assert_eq!(r.to_vec::<bool>().unwrap(), any, "any {axes:?}");
        }
    }
    // all/any of a float array test "non-zero".
    let f = arr(&[0.0, 1.0, 0.0, 0.0, 2.0, -3.0], &[2, 3]);
    assert_eq!(
        f.any(&[1], false).unwrap().to_vec::<bool>().unwrap(),
        vec![true, true]
    );
    assert_eq!(
        f.all(&[1], false).unwrap().to_vec::<bool>().unwrap(),
        vec![false, false]
    );
}

fn argbest(g: &[f32], better: impl Fn(f32, f32) -> bool) -> u32 {
    let mut best = 0;
    for (i, &v) in g.iter().enumerate() {
        if better(v, g[best]) {
            best = i;
        }
    }
    best as u32
}

#[test]
fn argmax_and_argmin_along_each_axis() {
    let shape = [3, 4, 5];
    let x = data(17, 60);
    let a = arr(&x, &shape);
    for axis in [0, 1, 2, -1, -2] {
        for keepdims in [false, true] {
            let (groups, out_shape) = reduce_groups(&x, &shape, &[axis], keepdims);
            let amax: Vec<u32> = groups.iter().map(|g| argbest(g, |a, b| a > b)).collect();
            let amin: Vec<u32> = groups.iter().map(|g| argbest(g, |a, b| a < b)).collect();
            let r = a.argmax(axis, keepdims).unwrap();
            assert_eq!((r.shape(), r.dtype()), (out_shape.clone(), Dtype::U32));
            assert_eq!(r.to_vec::<u32>().unwrap(), amax, "argmax axis {axis}");
            let r = a.argmin(axis, keepdims).unwrap();
            assert_eq!((r.shape(), r.dtype()), (out_shape.clone(), Dtype::U32));
            assert_eq!(r.to_vec::<u32>().unwrap(), amin, "argmin axis {axis}");
        }
    }
    // A transposed input.
    let (xt, ts) = permute(&x, &shape, &[2, 0, 1]);
    let at = a.transpose(&[2, 0, 1]).unwrap();
    let (groups, out_shape) = reduce_groups(&xt, &ts, &[1], false);
    let amax: Vec<u32> = groups.iter().map(|g| argbest(g, |a, b| a > b)).collect();
    let r = at.argmax(1, false).unwrap();
    assert_eq!(r.shape(), out_shape);
    assert_eq!(r.to_vec::<u32>().unwrap(), amax);
    // Ties: the index must point at a maximal value.
    let t = arr(&[1.0, 3.0, 3.0, 0.0], &[4]);
    let i = t.argmax(0, false).unwrap().item::<u32>().unwrap();
    assert!(i == 1 || i == 2, "argmax of a tie gave {i}");
}

#[test]
fn cumsum_along_axes() {
    let shape = [2, 3, 4];
    let x = data(23, 24);
    let a = arr(&x, &shape);
    for axis in [0, 1, 2, -1, -3] {
        let cum: Vec<Vec<f64>> = lanes(&to_f64(&x), &shape, axis)
            .into_iter()
            .map(|lane| {
                let mut acc = 0.0;
                lane.iter()
                    .map(|v| {
                        acc += v;
                        acc
                    })
                    .collect()
            })
            .collect();
        let expected = from_lanes(&cum, &shape, axis);
        let what = format!("cumsum axis {axis}");
        check(
            &a.cumsum(axis).unwrap(),
            &shape,
            &expected,
            1e-6,
            1e-5,
            &what,
        );
        check(
            &a.reduce(Reduction::CumSum, &[axis], false).unwrap(),
            &shape,
            &expected,
            1e-6,
            1e-5,
            &what,
        );
    }
}

fn softmax_over(x: &[f64], shape: &[i32], axes: &[i32]) -> Vec<f64> {
    // Softmax over several axes: each reduction group is one softmax.
    let (groups, _) = reduce_groups(x, shape, axes, true);
    let soft: Vec<Vec<f64>> = groups.iter().map(|g| softmax_naive(g)).collect();
    // Write back: walk the elements in the same order reduce_groups did.
    let nd = shape.len();
    let axes: Vec<usize> = axes.iter().map(|&a| norm_axis(a, nd)).collect();
    let kept: Vec<i32> = (0..nd)
        .map(|i| if axes.contains(&i) { 1 } else { shape[i] })
        .collect();
    let mut cursor = vec![0usize; soft.len()];
    (0..x.len())
        .map(|flat| {
            let mut idx = unravel(flat, shape);
            for &a in &axes {
                idx[a] = 0;
            }
            let g = ravel(&idx, &kept);
            cursor[g] += 1;
            soft[g][cursor[g] - 1]
        })
        .collect()
}

#[test]
fn softmax_matches_stable_naive_softmax() {
    let shape = [2, 3, 5];
    let x = rand_vec(29, 30, -4.0, 4.0);
    let a = arr(&x, &shape);
    for axes in [&[-1][..], &[2], &[0], &[1, 2], &[0, -1]] {
        let expected = softmax_over(&to_f64(&x), &shape, axes);
        for precise in [false, true] {
            check(
                &a.softmax(axes, precise).unwrap(),
                &shape,
                &expected,
                1e-7,
                1e-5,
                &format!("softmax axes={axes:?}"),
            );
        }
    }
    // Large logits must not overflow; a transposed input.
    let big: Vec<f32> = x.iter().map(|v| v * 200.0 + 1000.0).collect();
    let (bt, ts) = permute(&big, &shape, &[2, 0, 1]);
    let at = arr(&big, &shape).transpose(&[2, 0, 1]).unwrap();
    let expected = softmax_over(&to_f64(&bt), &ts, &[-1]);
    check(
        &at.softmax(&[-1], false).unwrap(),
        &ts,
        &expected,
        1e-6,
        1e-4,
        "softmax of large transposed logits",
    );
}

#[test]
fn softmax_of_half_precision_input() {
    let x = rand_vec(31, 16, -3.0, 3.0);
    let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
    let a = Array::from_slice(&h, &[2, 8]).unwrap();
    let hv: Vec<f64> = h.iter().map(|v| v.to_f64()).collect();
    let expected = softmax_over(&hv, &[2, 8], &[-1]);
    for precise in [false, true] {
        let r = a.softmax(&[-1], precise).unwrap();
        assert_eq!(r.dtype(), Dtype::F16);
        assert_close(&read_f16(&r), &expected, 2e-3, 4e-3, "f16 softmax");
    }
}

#[test]
fn log_softmax_matches_naive() {
    let shape = [3, 7];
    let x = rand_vec(37, 21, -5.0, 5.0);
    let a = arr(&x, &shape);
    for axis in [-1, 0, 1] {
        let ls: Vec<Vec<f64>> = lanes(&to_f64(&x), &shape, axis)
            .into_iter()
            .map(|lane| {
                let l = logsumexp_naive(&lane);
                lane.iter().map(|v| v - l).collect()
            })
            .collect();
        let expected = from_lanes(&ls, &shape, axis);
        check(
            &a.log_softmax(axis).unwrap(),
            &shape,
            &expected,
            2e-6,
            1e-5,
            &format!("log_softmax axis {axis}"),
        );
    }
}

#[test]
fn gelu_exact_matches_erf_form() {
    let x: Vec<f32> = (0..161).map(|i| -8.0 + i as f32 * 0.1).collect();
    let expected: Vec<f64> = x.iter().map(|&v| gelu_naive(v)).collect();
    check(
        &arr(&x, &[161]).gelu().unwrap(),
        &[161],
        &expected,
        2e-6,
        1e-5,
        "gelu",
    );
    // Non-contiguous input: [4, 5] transposed.
    let y = rand_vec(41, 20, -3.0, 3.0);
    let (yt, ts) = permute(&y, &[4, 5], &[1, 0]);
    let expected: Vec<f64> = yt.iter().map(|&v| gelu_naive(v)).collect();
    check(
        &arr(&y, &[4, 5]).transpose(&[]).unwrap().gelu().unwrap(),
        &ts,
        &expected,
        2e-6,
        1e-5,
        "gelu transposed",
    );
}

#[test]
fn gelu_approx_matches_tanh_form() {
    let x: Vec<f32> = (0..161).map(|i| -8.0 + i as f32 * 0.1).collect();
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let expected: Vec<f64> = x
        .iter()
        .map(|&v| {
            let v = v as f64;
            0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
        })
        .collect();
    check(
        &arr(&x, &[161]).gelu_approx().unwrap(),
        &[161],
        &expected,
        2e-6,
        1e-5,
        "gelu_approx",
    );
    // The approximation differs from the exact form, by < 1e-3 here.
    let exact = read(&arr(&x, &[161]).gelu().unwrap());
    let approx = read(&arr(&x, &[161]).gelu_approx().unwrap());
    let max_diff = exact
        .iter()
        .zip(&approx)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff > 1e-5 && max_diff < 1e-3, "{max_diff}");
}
