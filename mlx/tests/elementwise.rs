//! Unary and binary element-wise operations, scalar variants, comparisons,
//! logical operations, broadcasting and `select`, against naive Rust loops.

mod common;

use common::*;
use mlx::{Array, BinaryOp, Dtype, UnaryOp};

type BinFn = fn(&Array, &Array) -> mlx::Result<Array>;
type Naive2<T, R> = fn(T, T) -> R;

type UnaryCase = (UnaryOp, fn(&Array) -> mlx::Result<Array>, fn(f64) -> f64);

/// Every float-valued unary op: the enum, the named method and a naive f64
/// reference. `positive` marks ops whose domain is `x > 0`.
fn unary_cases() -> Vec<(UnaryCase, bool)> {
    vec![
        ((UnaryOp::Negative, Array::negative, |x| -x), false),
        ((UnaryOp::Abs, Array::abs, f64::abs), false),
        ((UnaryOp::Exp, Array::exp, f64::exp), false),
        ((UnaryOp::Log, Array::log, f64::ln), true),
        ((UnaryOp::Sqrt, Array::sqrt, f64::sqrt), true),
        ((UnaryOp::Rsqrt, Array::rsqrt, |x| 1.0 / x.sqrt()), true),
        ((UnaryOp::Erf, Array::erf, erf), false),
        ((UnaryOp::Tanh, Array::tanh, f64::tanh), false),
        (
            (UnaryOp::Sigmoid, Array::sigmoid, |x| {
                1.0 / (1.0 + (-x).exp())
            }),
            false,
        ),
        ((UnaryOp::Sin, Array::sin, f64::sin), false),
        ((UnaryOp::Cos, Array::cos, f64::cos), false),
        ((UnaryOp::Square, Array::square, |x| x * x), false),
        ((UnaryOp::Floor, Array::floor, f64::floor), false),
        ((UnaryOp::Ceil, Array::ceil, f64::ceil), false),
        ((UnaryOp::Round, Array::round, f64::round_ties_even), false),
        ((UnaryOp::Log1p, Array::log1p, f64::ln_1p), true),
        (
            (UnaryOp::Sign, Array::sign, |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }),
            false,
        ),
        ((UnaryOp::Reciprocal, Array::reciprocal, |x| 1.0 / x), true),
        ((UnaryOp::Log10, Array::log10, f64::log10), true),
    ]
}

#[test]
fn unary_ops_match_naive_on_contiguous_and_transposed_input() {
    // [3, 4] data; the transposed view [4, 3] is non-contiguous.
    let shape = [3, 4];
    for (i, ((op, method, naive), positive)) in unary_cases().into_iter().enumerate() {
        let x = if positive {
            rand_vec(100 + i as u64, 12, 0.05, 4.0)
        } else {
            rand_vec(100 + i as u64, 12, -3.0, 3.0)
        };
        let a = arr(&x, &shape);
        let expected: Vec<f64> = x.iter().map(|&v| naive(v as f64)).collect();
        let what = format!("{op:?}");
        check(&method(&a).unwrap(), &shape, &expected, 1e-6, 2e-6, &what);
        check(&a.unary(op).unwrap(), &shape, &expected, 1e-6, 2e-6, &what);

        let (xt, t_shape) = permute(&x, &shape, &[1, 0]);
        let expected_t: Vec<f64> = xt.iter().map(|&v| naive(v as f64)).collect();
        let at = a.transpose(&[]).unwrap();
        check(
            &method(&at).unwrap(),
            &t_shape,
            &expected_t,
            1e-6,
            2e-6,
            &format!("{what} (transposed)"),
        );
    }
}

#[test]
fn unary_special_values() {
    // Rounding is half-to-even, like NumPy; sign(0) = 0; floor/ceil of negatives.
    let x = [-2.5f32, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.5, -0.7, 0.7];
    let a = arr(&x, &[10]);
    let exp = |f: fn(f64) -> f64| x.iter().map(|&v| f(v as f64)).collect::<Vec<_>>();
    check(
        &a.round().unwrap(),
        &[10],
        &exp(f64::round_ties_even),
        0.0,
        0.0,
        "round",
    );
    check(
        &a.floor().unwrap(),
        &[10],
        &exp(f64::floor),
        0.0,
        0.0,
        "floor",
    );
    check(&a.ceil().unwrap(), &[10], &exp(f64::ceil), 0.0, 0.0, "ceil");
    let sign: Vec<f64> = x
        .iter()
        .map(|&v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        })
        .collect();
    check(&a.sign().unwrap(), &[10], &sign, 0.0, 0.0, "sign");

    // log/sqrt outside their domain, and large inputs of the saturating ops.
    let y = arr(&[-1.0, 0.0, 50.0, -50.0], &[4]);
    let log = read(&y.log().unwrap());
    assert!(log[0].is_nan() && log[1] == f32::NEG_INFINITY);
    assert!(read(&y.sqrt().unwrap())[0].is_nan());
    check(
        &y.sigmoid().unwrap(),
        &[4],
        &[0.2689414213699951, 0.5, 1.0, 0.0],
        1e-7,
        1e-6,
        "sigmoid saturation",
    );
    check(
        &y.tanh().unwrap(),
        &[4],
        &[-0.7615941559557649, 0.0, 1.0, -1.0],
        1e-7,
        1e-6,
        "tanh saturation",
    );
    check(
        &y.erf().unwrap(),
        &[4],
        &[erf(-1.0), 0.0, 1.0, -1.0],
        1e-7,
        1e-6,
        "erf saturation",
    );
    // log1p keeps precision for tiny x where log(1 + x) would not.
    let tiny = arr(&[1e-7, -1e-7, 1e-10], &[3]);
    check(
        &tiny.log1p().unwrap(),
        &[3],
        &[1e-7f32 as f64, -1e-7f32 as f64, 1e-10f32 as f64],
        0.0,
        1e-6,
        "log1p tiny",
    );
}

/// MLX's erf has an absolute error of about 3e-7 everywhere, so its
/// relative error grows near zero (erf(1e-5) comes out 1.7% low): compare
/// with an absolute tolerance.
#[test]
fn erf_is_accurate_over_a_fine_grid() {
    let x: Vec<f32> = (0..801).map(|i| -4.0 + i as f32 * 0.01).collect();
    let expected: Vec<f64> = x.iter().map(|&v| erf(v as f64)).collect();
    check(
        &arr(&x, &[801]).erf().unwrap(),
        &[801],
        &expected,
        4e-7,
        1e-6,
        "erf grid",
    );
}

#[test]
fn logical_not_on_bool() {
    let x = [true, false, false, true, true];
    let a = Array::from_slice(&x, &[5]).unwrap();
    let r = a.logical_not().unwrap();
    assert_eq!(r.dtype(), Dtype::Bool);
    assert_eq!(
        r.to_vec::<bool>().unwrap(),
        x.iter().map(|b| !b).collect::<Vec<_>>()
    );
    let r2 = a.unary(UnaryOp::LogicalNot).unwrap();
    assert_eq!(r2.to_vec::<bool>().unwrap(), r.to_vec::<bool>().unwrap());
}

#[test]
fn real_and_imag_of_rfft_output() {
    let n = 12usize;
    let x = data(7, n);
    let spec = mlx::fft::rfft(&arr(&x, &[n as i32]), n as i32, -1).unwrap();
    assert_eq!(spec.dtype(), Dtype::Complex64);
    let bins = n / 2 + 1;
    let mut re = vec![0.0; bins];
    let mut im = vec![0.0; bins];
    for k in 0..bins {
        for (t, &v) in x.iter().enumerate() {
            let ang = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
            re[k] += v as f64 * ang.cos();
            im[k] += v as f64 * ang.sin();
        }
    }
    check(
        &spec.real().unwrap(),
        &[bins as i32],
        &re,
        1e-5,
        1e-5,
        "real",
    );
    check(
        &spec.imag().unwrap(),
        &[bins as i32],
        &im,
        1e-5,
        1e-5,
        "imag",
    );
    check(
        &spec.unary(UnaryOp::Real).unwrap(),
        &[bins as i32],
        &re,
        1e-5,
        1e-5,
        "real op",
    );
    check(
        &spec.unary(UnaryOp::Imag).unwrap(),
        &[bins as i32],
        &im,
        1e-5,
        1e-5,
        "imag op",
    );
    // abs of a complex array is its magnitude, in f32.
    let mag: Vec<f64> = re.iter().zip(&im).map(|(r, i)| r.hypot(*i)).collect();
    check(
        &spec.abs().unwrap(),
        &[bins as i32],
        &mag,
        1e-5,
        1e-5,
        "complex abs",
    );
}

fn floor_div(a: f64, b: f64) -> f64 {
    (a / b).floor()
}

/// Python/NumPy remainder: the result has the divisor's sign.
fn py_rem(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else {
        r
    }
}

#[test]
fn float_binary_ops_with_broadcasting() {
    // [2, 1, 4] op [3, 1] -> [2, 3, 4]
    let (sa, sb) = ([2, 1, 4], [3, 1]);
    let a = rand_vec(1, 8, -3.0, 3.0);
    let mut b = rand_vec(2, 3, -2.0, 2.0);
    b[1] = a[2]; // make some elements equal for the comparisons
    let pos_a = rand_vec(3, 8, 0.1, 3.0);
    let cases: Vec<(BinaryOp, BinFn, Naive2<f64, f64>)> = vec![
        (BinaryOp::Add, Array::add, |x, y| x + y),
        (BinaryOp::Subtract, Array::subtract, |x, y| x - y),
        (BinaryOp::Multiply, Array::multiply, |x, y| x * y),
        (BinaryOp::Divide, Array::divide, |x, y| x / y),
        (BinaryOp::Maximum, Array::maximum, f64::max),
        (BinaryOp::Minimum, Array::minimum, f64::min),
        (BinaryOp::Power, Array::power, f64::powf),
        (BinaryOp::FloorDivide, Array::floor_divide, floor_div),
        (BinaryOp::Remainder, Array::remainder, py_rem),
    ];
    for (op, method, naive) in cases {
        let lhs = if op == BinaryOp::Power { &pos_a } else { &a };
        let (expected, shape) = zip_broadcast(lhs, &sa, &b, &sb, |x, y| naive(x as f64, y as f64));
        let (xa, xb) = (arr(lhs, &sa), arr(&b, &sb));
        let what = format!("{op:?}");
        check(
            &method(&xa, &xb).unwrap(),
            &shape,
            &expected,
            1e-5,
            1e-5,
            &what,
        );
        check(
            &xa.binary(op, &xb).unwrap(),
            &shape,
            &expected,
            1e-5,
            1e-5,
            &what,
        );
        // Swapped operands broadcast the other way round.
        if op != BinaryOp::Power {
            let (expected, shape) =
                zip_broadcast(&b, &sb, lhs, &sa, |x, y| naive(x as f64, y as f64));
            check(
                &method(&xb, &xa).unwrap(),
                &shape,
                &expected,
                1e-5,
                1e-5,
                &format!("{what} swapped"),
            );
        }
    }
}

#[test]
fn binary_ops_on_non_contiguous_inputs() {
    // a: [3, 4] transposed to [4, 3]; b: [4, 3] contiguous; c: [3] row.
    let x = data(11, 12);
    let y = data(12, 12);
    let (xt, ts) = permute(&x, &[3, 4], &[1, 0]);
    let at = arr(&x, &[3, 4]).transpose(&[1, 0]).unwrap();
    let b = arr(&y, &[4, 3]);
    let expected: Vec<f64> = xt.iter().zip(&y).map(|(&p, &q)| (p * q) as f64).collect();
    check(
        &at.multiply(&b).unwrap(),
        &ts,
        &expected,
        1e-7,
        1e-6,
        "transposed * contiguous",
    );
    // Both inputs transposed views; plus a broadcast row.
    let bt = arr(&y, &[4, 3]).transpose(&[1, 0]).unwrap(); // [3, 4]
    let (yt, _) = permute(&y, &[4, 3], &[1, 0]);
    let row = data(13, 4);
    let expected: Vec<f64> = (0..12)
        .map(|i| x[i] as f64 - yt[i] as f64 + row[i % 4] as f64)
        .collect();
    let r = arr(&x, &[3, 4])
        .subtract(&bt)
        .unwrap()
        .add(&arr(&row, &[4]))
        .unwrap();
    check(&r, &[3, 4], &expected, 1e-6, 1e-6, "x - yT + row");
}

#[test]
fn scalar_variants() {
    let x = rand_vec(21, 6, 0.2, 3.0);
    let a = arr(&x, &[2, 3]);
    let e = |f: &dyn Fn(f64) -> f64| x.iter().map(|&v| f(v as f64)).collect::<Vec<_>>();
    let tol = (1e-6, 1e-6);
    check(
        &a.add_scalar(1.5).unwrap(),
        &[2, 3],
        &e(&|v| v + 1.5),
        tol.0,
        tol.1,
        "add_scalar",
    );
    check(
        &a.sub_scalar(0.25).unwrap(),
        &[2, 3],
        &e(&|v| v - 0.25),
        tol.0,
        tol.1,
        "sub_scalar",
    );
    check(
        &a.mul_scalar(-3.0).unwrap(),
        &[2, 3],
        &e(&|v| v * -3.0),
        tol.0,
        tol.1,
        "mul_scalar",
    );
    check(
        &a.div_scalar(4.0).unwrap(),
        &[2, 3],
        &e(&|v| v / 4.0),
        tol.0,
        tol.1,
        "div_scalar",
    );
    check(
        &a.max_scalar(1.0).unwrap(),
        &[2, 3],
        &e(&|v| v.max(1.0)),
        tol.0,
        tol.1,
        "max_scalar",
    );
    check(
        &a.min_scalar(1.0).unwrap(),
        &[2, 3],
        &e(&|v| v.min(1.0)),
        tol.0,
        tol.1,
        "min_scalar",
    );
    check(
        &a.pow_scalar(2.5).unwrap(),
        &[2, 3],
        &e(&|v| v.powf(2.5)),
        tol.0,
        2e-6,
        "pow_scalar",
    );
    check(
        &a.binary_scalar(BinaryOp::Remainder, 0.5).unwrap(),
        &[2, 3],
        &e(&|v| py_rem(v, 0.5)),
        tol.0,
        tol.1,
        "binary_scalar remainder",
    );
    // Scalar on the left: 1 - x, 2 / x, 2 ^ x.
    check(
        &a.scalar_binary(1.0, BinaryOp::Subtract).unwrap(),
        &[2, 3],
        &e(&|v| 1.0 - v),
        tol.0,
        tol.1,
        "1 - x",
    );
    check(
        &a.scalar_binary(2.0, BinaryOp::Divide).unwrap(),
        &[2, 3],
        &e(&|v| 2.0 / v),
        tol.0,
        tol.1,
        "2 / x",
    );
    check(
        &a.scalar_binary(2.0, BinaryOp::Power).unwrap(),
        &[2, 3],
        &e(&|v| 2f64.powf(v)),
        tol.0,
        2e-6,
        "2 ^ x",
    );
}

#[test]
fn scalar_takes_the_array_dtype() {
    let x: Vec<half::f16> = [0.5f32, 1.25, -2.0, 3.5]
        .iter()
        .map(|&v| half::f16::from_f32(v))
        .collect();
    let a = Array::from_slice(&x, &[4]).unwrap();
    let r = a.mul_scalar(2.0).unwrap().add_scalar(0.5).unwrap();
    assert_eq!(r.dtype(), Dtype::F16);
    let expected: Vec<half::f16> = x
        .iter()
        .map(|v| half::f16::from_f32(v.to_f32() * 2.0 + 0.5))
        .collect();
    assert_eq!(r.to_vec::<half::f16>().unwrap(), expected);

    // An i32 array stays i32; the scalar is converted to i32.
    let i = Array::from_slice(&[1i32, -2, 7], &[3]).unwrap();
    let r = i.mul_scalar(3.0).unwrap();
    assert_eq!(r.dtype(), Dtype::I32);
    assert_eq!(r.to_vec::<i32>().unwrap(), vec![3, -6, 21]);
}

#[test]
fn integer_binary_ops() {
    let a = [7i32, -7, 9, -9, 0, 5];
    let b = [2i32, 2, -4, -4, 3, 5];
    let (xa, xb) = (
        Array::from_slice(&a, &[6]).unwrap(),
        Array::from_slice(&b, &[6]).unwrap(),
    );
    let fd = |x: i32, y: i32| {
        let q = x / y;
        if (x % y != 0) && ((x < 0) != (y < 0)) {
            q - 1
        } else {
            q
        }
    };
    let rem = |x: i32, y: i32| x - y * fd(x, y);
    let ops: Vec<(BinFn, Naive2<i32, i32>, &str)> = vec![
        (Array::add, |x, y| x + y, "add"),
        (Array::subtract, |x, y| x - y, "subtract"),
        (Array::multiply, |x, y| x * y, "multiply"),
        (Array::maximum, |x, y| x.max(y), "maximum"),
        (Array::minimum, |x, y| x.min(y), "minimum"),
    ];
    for (m, f, what) in ops {
        let r = m(&xa, &xb).unwrap();
        assert_eq!(r.dtype(), Dtype::I32, "{what}");
        let expected: Vec<i32> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
        assert_eq!(r.to_vec::<i32>().unwrap(), expected, "{what}");
    }
    // MLX's integer floor_divide truncates toward zero (C++ `/`), unlike
    // NumPy's `//` (-7 // 2 is -3 here, -4 in NumPy); its float
    // floor_divide and its integer remainder do follow NumPy.
    let r = xa.floor_divide(&xb).unwrap();
    assert_eq!(r.dtype(), Dtype::I32);
    let expected: Vec<i32> = a.iter().zip(&b).map(|(&x, &y)| x / y).collect();
    assert_eq!(r.to_vec::<i32>().unwrap(), expected, "floor_divide");
    let r = xa.remainder(&xb).unwrap();
    let expected: Vec<i32> = a.iter().zip(&b).map(|(&x, &y)| rem(x, y)).collect();
    assert_eq!(r.to_vec::<i32>().unwrap(), expected, "remainder");
    // i32 / i32 is true division into a float.
    let r = xa.divide(&xb).unwrap();
    assert!(r.dtype().is_float(), "divide gives {:?}", r.dtype());
    let expected: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| x as f64 / y as f64)
        .collect();
    assert_close(&read(&r), &expected, 1e-6, 1e-6, "int divide");
}

#[test]
fn comparisons_give_bool_with_broadcasting() {
    let (sa, sb) = ([2, 3], [3]);
    let a = [1.0f32, 2.0, 3.0, -1.0, 2.0, 5.0];
    let b = [1.0f32, 3.0, 2.0];
    let (xa, xb) = (arr(&a, &sa), arr(&b, &sb));
    let cases: Vec<(BinaryOp, BinFn, Naive2<f32, bool>)> = vec![
        (BinaryOp::Equal, Array::equal, |x, y| x == y),
        (BinaryOp::NotEqual, Array::not_equal, |x, y| x != y),
        (BinaryOp::Less, Array::less, |x, y| x < y),
        (BinaryOp::LessEqual, Array::less_equal, |x, y| x <= y),
        (BinaryOp::Greater, Array::greater, |x, y| x > y),
        (BinaryOp::GreaterEqual, Array::greater_equal, |x, y| x >= y),
    ];
    for (op, method, naive) in cases {
        let (expected, shape) = zip_broadcast(&a, &sa, &b, &sb, naive);
        for r in [method(&xa, &xb).unwrap(), xa.binary(op, &xb).unwrap()] {
            assert_eq!(r.shape(), shape, "{op:?}");
            assert_eq!(r.dtype(), Dtype::Bool, "{op:?}");
            assert_eq!(r.to_vec::<bool>().unwrap(), expected, "{op:?}");
        }
    }
}

#[test]
fn logical_ops_with_broadcasting() {
    let a = [true, false, true, false, true, true];
    let b = [true, false, false];
    let xa = Array::from_slice(&a, &[2, 3]).unwrap();
    let xb = Array::from_slice(&b, &[3]).unwrap();
    let (and, shape) = zip_broadcast(&a, &[2, 3], &b, &[3], |x, y| x && y);
    let (or, _) = zip_broadcast(&a, &[2, 3], &b, &[3], |x, y| x || y);
    let r = xa.logical_and(&xb).unwrap();
    assert_eq!((r.shape(), r.dtype()), (shape.clone(), Dtype::Bool));
    assert_eq!(r.to_vec::<bool>().unwrap(), and);
    let r = xa.logical_or(&xb).unwrap();
    assert_eq!((r.shape(), r.dtype()), (shape, Dtype::Bool));
    assert_eq!(r.to_vec::<bool>().unwrap(), or);
    let r = xa.binary(BinaryOp::LogicalAnd, &xb).unwrap();
    assert_eq!(r.to_vec::<bool>().unwrap(), and);
}

#[test]
fn broadcasting_against_zero_dim_and_middle_axes() {
    let x = data(31, 24);
    let s = 0.75f32;
    let a = arr(&x, &[2, 3, 4]);
    let sc = Array::scalar(s).unwrap();
    let expected: Vec<f64> = x.iter().map(|&v| (v * s) as f64).collect();
    check(
        &a.multiply(&sc).unwrap(),
        &[2, 3, 4],
        &expected,
        1e-7,
        1e-6,
        "x * 0-d",
    );
    check(
        &sc.multiply(&a).unwrap(),
        &[2, 3, 4],
        &expected,
        1e-7,
        1e-6,
        "0-d * x",
    );
    // [2, 1, 4] vs [1, 3, 1]: both sides broadcast.
    let p = data(32, 8);
    let q = data(33, 3);
    let (expected, shape) = zip_broadcast(&p, &[2, 1, 4], &q, &[1, 3, 1], |u, v| (u - v) as f64);
    check(
        &arr(&p, &[2, 1, 4]).subtract(&arr(&q, &[1, 3, 1])).unwrap(),
        &shape,
        &expected,
        1e-7,
        1e-6,
        "two-sided broadcast",
    );
    assert_eq!(shape, vec![2, 3, 4]);
}

#[test]
fn select_with_broadcasting() {
    let cond = [true, false, true, false, false, true];
    let c = Array::from_slice(&cond, &[2, 3]).unwrap();
    let x = data(41, 3);
    let y = 9.5f32;
    let r = c
        .select(&arr(&x, &[3]), &Array::scalar(y).unwrap())
        .unwrap();
    let expected: Vec<f64> = (0..6)
        .map(|i| if cond[i] { x[i % 3] as f64 } else { y as f64 })
        .collect();
    check(&r, &[2, 3], &expected, 0.0, 0.0, "select");

    // Condition computed from data, on a transposed (non-contiguous) input.
    let v = data(42, 12);
    let vt = arr(&v, &[3, 4]).transpose(&[1, 0]).unwrap();
    let zeros = Array::zeros(&[4, 3], Dtype::F32).unwrap();
    let r = vt.greater(&zeros).unwrap().select(&vt, &zeros).unwrap();
    let (pt, ts) = permute(&v, &[3, 4], &[1, 0]);
    let expected: Vec<f64> = pt.iter().map(|&u| u.max(0.0) as f64).collect();
    check(&r, &ts, &expected, 0.0, 0.0, "relu via select");
}
