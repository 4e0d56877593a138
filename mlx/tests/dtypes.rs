//! Element types: round trips through MLX, conversions checked against
//! Rust's own conversions, dtype errors, scalars and constructors.

mod common;

use common::*;
use half::{bf16, f16};
use mlx::{Array, Dtype, Element, Error};

fn round_trip<T: Element + PartialEq + std::fmt::Debug>(values: &[T], shape: &[i32]) {
    let a = Array::from_slice(values, shape).unwrap();
    assert_eq!(a.dtype(), T::DTYPE);
    assert_eq!(a.shape(), shape);
    assert_eq!(a.size(), values.len());
    assert_eq!(a.ndim(), shape.len());
    assert_eq!(a.nbytes(), values.len() * T::DTYPE.size());
    assert_eq!(a.to_vec::<T>().unwrap(), values, "{:?}", T::DTYPE);
    // The raw bytes are the native-endian element bytes.
    assert_eq!(a.to_bytes().unwrap(), T::to_bytes(values).into_owned());
    // And a copy through from_bytes is identical.
    let b = Array::from_bytes(&a.to_bytes().unwrap(), shape, T::DTYPE).unwrap();
    assert_eq!(b.to_vec::<T>().unwrap(), values);
}

#[test]
fn from_slice_to_vec_round_trips() {
    let f = data(1, 6);
    round_trip(&f, &[2, 3]);
    round_trip(&[f32::MAX, f32::MIN_POSITIVE, -0.0, f32::INFINITY], &[4]);
    let h: Vec<f16> = f.iter().map(|&v| f16::from_f32(v)).collect();
    round_trip(&h, &[3, 2]);
    round_trip(
        &[f16::MAX, f16::MIN, f16::EPSILON, f16::NEG_INFINITY],
        &[2, 2],
    );
    let b: Vec<bf16> = f.iter().map(|&v| bf16::from_f32(v)).collect();
    round_trip(&b, &[6]);
    round_trip(&[bf16::MAX, bf16::MIN_POSITIVE], &[2]);
    round_trip(&[i32::MIN, -1, 0, 1, i32::MAX, 12345], &[2, 3]);
    round_trip(&[0u32, 1, u32::MAX, 0xDEAD_BEEF], &[4]);
    round_trip(&[0u8, 1, 127, 128, 255], &[5]);
    round_trip(&[true, false, false, true], &[2, 2]);
    round_trip(&[i64::MIN, -1, 0, i64::MAX, 1 << 40], &[5]);
    round_trip(&[u64::MAX, 3], &[2]);
    round_trip(&[-128i8, 0, 127], &[3]);
    round_trip(&[i16::MIN, 7, i16::MAX], &[3]);
    round_trip(&[u16::MAX, 9], &[2]);
    round_trip(&[1.0f64 / 3.0, -1e300], &[2]);
    // Empty and zero-dimensional arrays.
    round_trip::<f32>(&[], &[0, 3]);
    round_trip(&[2.5f32], &[]);
}

#[test]
fn astype_matches_rust_conversions() {
    // Values that exercise rounding in the narrower formats.
    let mut x = rand_vec(2, 64, -70000.0, 70000.0);
    x.extend(rand_vec(3, 64, -1.0, 1.0));
    x.extend([
        0.0,
        -0.0,
        1.0 / 3.0,
        65504.0,
        65520.0,
        1e-8,
        -2.5,
        1.0009766,
        1.0 + 3.0 / 1024.0,
    ]);
    let a = arr(&x, &[x.len() as i32]);

    let h = a.astype(Dtype::F16).unwrap();
    assert_eq!(h.dtype(), Dtype::F16);
    let want: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    let got: Vec<u16> = h
        .to_vec::<f16>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(got, want, "f32 -> f16");

    let b = a.astype(Dtype::BF16).unwrap();
    assert_eq!(b.dtype(), Dtype::BF16);
    let want: Vec<u16> = x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    let got: Vec<u16> = b
        .to_vec::<bf16>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(got, want, "f32 -> bf16");

    // Widening back is exact.
    let back = h.astype(Dtype::F32).unwrap();
    let want: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    assert_eq!(read(&back), want, "f16 -> f32");
    let back = b.astype(Dtype::F32).unwrap();
    let want: Vec<f32> = x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
    assert_eq!(read(&back), want, "bf16 -> f32");
    let d = a.astype(Dtype::F64).unwrap();
    let want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert_eq!(d.to_vec::<f64>().unwrap(), want, "f32 -> f64");

    // Float to integer truncates toward zero (within range).
    let y = [-2.7f32, -0.5, 0.0, 0.9, 3.99, 1e6, -123456.7];
    let ya = arr(&y, &[7]);
    let want: Vec<i32> = y.iter().map(|&v| v as i32).collect();
    assert_eq!(
        ya.astype(Dtype::I32).unwrap().to_vec::<i32>().unwrap(),
        want
    );
    let want: Vec<i64> = y.iter().map(|&v| v as i64).collect();
    assert_eq!(
        ya.astype(Dtype::I64).unwrap().to_vec::<i64>().unwrap(),
        want
    );
    // Non-zero is true.
    let want: Vec<bool> = y.iter().map(|&v| v != 0.0).collect();
    assert_eq!(
        ya.astype(Dtype::Bool).unwrap().to_vec::<bool>().unwrap(),
        want
    );
}

#[test]
fn integer_and_bool_conversions() {
    let i = [-3i32, 0, 7, 1 << 24, (1 << 24) + 1, i32::MAX];
    let a = Array::from_slice(&i, &[6]).unwrap();
    let want: Vec<f32> = i.iter().map(|&v| v as f32).collect();
    assert_eq!(read(&a.astype(Dtype::F32).unwrap()), want, "i32 -> f32");
    let want: Vec<i64> = i.iter().map(|&v| v as i64).collect();
    assert_eq!(a.astype(Dtype::I64).unwrap().to_vec::<i64>().unwrap(), want);
    // Narrowing integer casts wrap like Rust's `as`.
    let want: Vec<u8> = i.iter().map(|&v| v as u8).collect();
    assert_eq!(
        a.astype(Dtype::U8).unwrap().to_vec::<u8>().unwrap(),
        want,
        "i32 -> u8"
    );
    let want: Vec<u32> = i.iter().map(|&v| v as u32).collect();
    assert_eq!(
        a.astype(Dtype::U32).unwrap().to_vec::<u32>().unwrap(),
        want,
        "i32 -> u32"
    );

    let u = [0u8, 1, 200, 255];
    let a = Array::from_slice(&u, &[4]).unwrap();
    let want: Vec<f32> = u.iter().map(|&v| v as f32).collect();
    assert_eq!(read(&a.astype(Dtype::F32).unwrap()), want, "u8 -> f32");

    let b = [true, false, true];
    let a = Array::from_slice(&b, &[3]).unwrap();
    assert_eq!(read(&a.astype(Dtype::F32).unwrap()), vec![1.0, 0.0, 1.0]);
    assert_eq!(
        a.astype(Dtype::I32).unwrap().to_vec::<i32>().unwrap(),
        vec![1, 0, 1]
    );
    // bool + bool stays bool (a logical or, as in NumPy).
    let s = a
        .add(&Array::from_slice(&[true, true, false], &[3]).unwrap())
        .unwrap();
    assert_eq!(s.dtype(), Dtype::Bool);
    assert_eq!(s.to_vec::<bool>().unwrap(), vec![true, true, true]);
}

#[test]
fn to_vec_with_the_wrong_type_is_a_dtype_mismatch() {
    let a = arr(&[1.0, 2.0], &[2]);
    match a.to_vec::<f64>() {
        Err(Error::DtypeMismatch { array, requested }) => {
            assert_eq!((array, requested), (Dtype::F32, Dtype::F64));
        }
        other => panic!("expected DtypeMismatch, got {other:?}"),
    }
    assert!(matches!(
        a.to_vec::<i32>(),
        Err(Error::DtypeMismatch {
            array: Dtype::F32,
            requested: Dtype::I32
        })
    ));
    let h = a.astype(Dtype::F16).unwrap();
    assert!(matches!(
        h.to_vec::<bf16>(),
        Err(Error::DtypeMismatch {
            array: Dtype::F16,
            requested: Dtype::BF16
        })
    ));
    let msg = h
        .sum(&[], false)
        .unwrap()
        .item::<f32>()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("F16") && msg.contains("F32"), "{msg}");
    let b = Array::from_slice(&[true], &[1]).unwrap();
    assert!(matches!(b.to_vec::<u8>(), Err(Error::DtypeMismatch { .. })));
}

/// `read_into` gives what `to_vec` gives, in the buffer it was handed:
/// the same allocation when it holds the array, grown or shrunk to its
/// size, and untouched on a dtype mismatch.
#[test]
fn read_into_fills_the_given_buffer() {
    let values: Vec<f32> = (0..1000).map(|i| (i as f32).sin()).collect();
    let a = arr(&values, &[10, 100]).mul_scalar(3.0).unwrap();
    let mut out: Vec<f32> = Vec::with_capacity(1000);
    let at = out.as_ptr();
    a.read_into(&mut out).unwrap();
    assert_eq!(out, a.to_vec::<f32>().unwrap());
    assert_eq!(out.as_ptr(), at, "reallocated");
    let row = a.slice_axis(0, 3, 4).unwrap();
    row.read_into(&mut out).unwrap();
    assert_eq!(out, row.to_vec::<f32>().unwrap());
    assert_eq!(out.len(), 100);
    let mut stale = vec![7.0f64; 3];
    assert!(matches!(
        a.read_into(&mut stale),
        Err(Error::DtypeMismatch {
            array: Dtype::F32,
            requested: Dtype::F64
        })
    ));
    assert_eq!(stale, vec![7.0; 3]);
    let halves = a.astype(Dtype::F16).unwrap();
    let mut h: Vec<f16> = Vec::new();
    halves.read_into(&mut h).unwrap();
    assert_eq!(h, halves.to_vec::<f16>().unwrap());
}

#[test]
fn item_and_scalar() {
    let s = Array::scalar(2.5f32).unwrap();
    assert_eq!(s.shape(), Vec::<i32>::new());
    assert_eq!((s.ndim(), s.size(), s.dtype()), (0, 1, Dtype::F32));
    assert_eq!(s.item::<f32>().unwrap(), 2.5);
    assert_eq!(Array::scalar(-7i32).unwrap().item::<i32>().unwrap(), -7);
    assert!(Array::scalar(true).unwrap().item::<bool>().unwrap());
    assert_eq!(
        Array::scalar(f16::from_f32(0.5))
            .unwrap()
            .item::<f16>()
            .unwrap(),
        f16::from_f32(0.5)
    );
    assert_eq!(Array::scalar(u8::MAX).unwrap().item::<u8>().unwrap(), 255);
    // A one-element array of any rank has an item.
    let x = data(4, 6);
    let total = arr(&x, &[2, 3]).sum(&[], true).unwrap();
    assert_eq!(total.shape(), vec![1, 1]);
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    assert!((total.item::<f32>().unwrap() as f64 - want).abs() < 1e-5);
    // item() of several elements is an error, not a panic.
    let msg = arr(&x, &[2, 3]).item::<f32>().unwrap_err().to_string();
    assert!(msg.contains("item"), "{msg}");
}

#[test]
fn constructors() {
    for dtype in [Dtype::F32, Dtype::F16, Dtype::I32, Dtype::U8, Dtype::BF16] {
        let z = Array::zeros(&[2, 3], dtype).unwrap();
        assert_eq!((z.shape(), z.dtype()), (vec![2, 3], dtype));
        assert!(z.to_bytes().unwrap().iter().all(|&b| b == 0), "{dtype:?}");
        let o = Array::ones(&[4], dtype).unwrap();
        assert_eq!(o.dtype(), dtype);
        assert_eq!(read(&o.astype(Dtype::F32).unwrap()), vec![1.0; 4]);
    }
    let f = Array::full(&[3, 1], 2.75, Dtype::F32).unwrap();
    assert_eq!(f.shape(), vec![3, 1]);
    assert_eq!(read(&f), vec![2.75; 3]);
    let f = Array::full(&[2], 2.75, Dtype::I32).unwrap();
    assert_eq!(f.to_vec::<i32>().unwrap(), vec![2, 2]);
    let f = Array::full(&[2], 0.1, Dtype::F16).unwrap();
    assert_eq!(f.to_vec::<f16>().unwrap(), vec![f16::from_f64(0.1); 2]);
    let f = Array::full(&[2], 1.0, Dtype::Bool).unwrap();
    assert_eq!(f.to_vec::<bool>().unwrap(), vec![true, true]);

    let r = Array::arange(0.0, 5.0, 1.0, Dtype::F32).unwrap();
    assert_eq!(read(&r), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    let r = Array::arange(1.0, 2.0, 0.25, Dtype::F32).unwrap();
    assert_eq!(read(&r), vec![1.0, 1.25, 1.5, 1.75]);
    let r = Array::arange(10.0, 0.0, -3.0, Dtype::I32).unwrap();
    assert_eq!(r.dtype(), Dtype::I32);
    assert_eq!(r.to_vec::<i32>().unwrap(), vec![10, 7, 4, 1]);
    let r = Array::arange(0.0, 0.3, 0.1, Dtype::F64).unwrap();
    assert_eq!(r.shape(), vec![3]);
    let want: Vec<f64> = (0..3).map(|i| i as f64 * 0.1).collect();
    assert_close(
        &r.to_vec::<f64>()
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        &want,
        1e-7,
        0.0,
        "arange f64",
    );
    let e = Array::arange(3.0, 3.0, 1.0, Dtype::F32).unwrap();
    assert_eq!(e.shape(), vec![0]);
}

#[test]
fn shape_queries_and_formatting() {
    let a = Array::zeros(&[2, 3, 4], Dtype::F16).unwrap();
    assert_eq!(a.dim(0).unwrap(), 2);
    assert_eq!(a.dim(-1).unwrap(), 4);
    assert_eq!(a.dim(-3).unwrap(), 2);
    assert!(a.dim(3).is_err());
    assert!(a.dim(-4).is_err());
    assert_eq!(a.nbytes(), 48);
    assert_eq!(format!("{a:?}"), "Array(shape=[2, 3, 4], dtype=F16)");
    let s = arr(&[1.5, -2.0], &[2]).to_string_with_values().unwrap();
    assert!(s.contains("1.5") && s.contains("-2"), "{s}");
    // Clones share data and are independent handles.
    let x = arr(&[1.0, 2.0, 3.0], &[3]);
    let y = x.clone();
    drop(x);
    assert_eq!(read(&y), vec![1.0, 2.0, 3.0]);
    // Dtype sizes and float-ness.
    let sizes = [
        (Dtype::Bool, 1, false),
        (Dtype::U8, 1, false),
        (Dtype::I16, 2, false),
        (Dtype::F16, 2, true),
        (Dtype::BF16, 2, true),
        (Dtype::I32, 4, false),
        (Dtype::F32, 4, true),
        (Dtype::I64, 8, false),
        (Dtype::F64, 8, true),
        (Dtype::Complex64, 8, false),
    ];
    for (d, size, float) in sizes {
        assert_eq!((d.size(), d.is_float()), (size, float), "{d:?}");
        // Matches what MLX allocates.
        let z = Array::zeros(&[3], d).unwrap();
        assert_eq!(z.dtype(), d);
        assert_eq!(z.to_bytes().unwrap().len(), 3 * size, "{d:?}");
    }
}
