//! Shape manipulation, slicing, strided views, padding, gathers, joins and
//! ordering operations, against naive index arithmetic in Rust.

mod common;

use common::*;
use mlx::{concatenate, stack, Array, Dtype};

fn i32s(v: &[i32], shape: &[i32]) -> Array {
    Array::from_slice(v, shape).unwrap()
}

/// Exact check for ops that only move data.
fn moved(a: &Array, shape: &[i32], expected: &[f32], what: &str) {
    check(a, shape, &to_f64(expected), 0.0, 0.0, what);
}

#[test]
fn reshape_keeps_row_major_order() {
    let x = data(1, 24);
    let a = arr(&x, &[2, 3, 4]);
    moved(&a.reshape(&[4, 6]).unwrap(), &[4, 6], &x, "reshape");
    moved(&a.reshape(&[-1, 2]).unwrap(), &[12, 2], &x, "reshape -1");
    moved(&a.reshape(&[24]).unwrap(), &[24], &x, "reshape flat");
    // Reshaping a transposed view follows its logical (permuted) order.
    let (xt, _) = permute(&x, &[2, 3, 4], &[2, 1, 0]);
    let at = a.transpose(&[2, 1, 0]).unwrap();
    moved(
        &at.reshape(&[6, 4]).unwrap(),
        &[6, 4],
        &xt,
        "reshape transposed",
    );
}

#[test]
fn transpose_and_swapaxes() {
    let shape = [2, 3, 4];
    let x = data(2, 24);
    let a = arr(&x, &shape);
    for perm in [[1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0]] {
        let (e, s) = permute(&x, &shape, &perm);
        let p: Vec<i32> = perm.iter().map(|&v| v as i32).collect();
        moved(
            &a.transpose(&p).unwrap(),
            &s,
            &e,
            &format!("transpose {perm:?}"),
        );
    }
    // Empty axes reverse them; negative axes count from the end.
    let (e, s) = permute(&x, &shape, &[2, 1, 0]);
    moved(&a.transpose(&[]).unwrap(), &s, &e, "transpose reversed");
    moved(
        &a.transpose(&[-1, -2, -3]).unwrap(),
        &s,
        &e,
        "transpose negative",
    );
    let (e, s) = permute(&x, &shape, &[2, 1, 0]);
    moved(&a.swapaxes(0, -1).unwrap(), &s, &e, "swapaxes(0, -1)");
    let (e, s) = permute(&x, &shape, &[0, 2, 1]);
    moved(&a.swapaxes(1, 2).unwrap(), &s, &e, "swapaxes(1, 2)");
    // Transpose twice is the identity.
    moved(
        &a.transpose(&[1, 2, 0])
            .unwrap()
            .transpose(&[2, 0, 1])
            .unwrap(),
        &shape,
        &x,
        "transpose round trip",
    );
}

#[test]
fn broadcast_expand_squeeze_flatten() {
    let x = data(3, 3);
    moved(
        &arr(&x, &[3]).broadcast_to(&[2, 3]).unwrap(),
        &[2, 3],
        &broadcast(&x, &[3], &[2, 3]),
        "broadcast [3] -> [2, 3]",
    );
    moved(
        &arr(&x, &[3, 1]).broadcast_to(&[2, 3, 4]).unwrap(),
        &[2, 3, 4],
        &broadcast(&x, &[3, 1], &[2, 3, 4]),
        "broadcast [3, 1] -> [2, 3, 4]",
    );

    let y = data(4, 6);
    let a = arr(&y, &[2, 3]);
    moved(
        &a.expand_dims(&[0]).unwrap(),
        &[1, 2, 3],
        &y,
        "expand_dims 0",
    );
    moved(
        &a.expand_dims(&[-1]).unwrap(),
        &[2, 3, 1],
        &y,
        "expand_dims -1",
    );
    moved(
        &a.expand_dims(&[0, 3]).unwrap(),
        &[1, 2, 3, 1],
        &y,
        "expand_dims [0, 3]",
    );
    let b = arr(&y, &[1, 2, 1, 3, 1]);
    moved(&b.squeeze(&[]).unwrap(), &[2, 3], &y, "squeeze all");
    moved(&b.squeeze(&[2]).unwrap(), &[1, 2, 3, 1], &y, "squeeze 2");
    moved(
        &b.squeeze(&[0, -1]).unwrap(),
        &[2, 1, 3],
        &y,
        "squeeze [0, -1]",
    );

    let z = data(5, 24);
    let c = arr(&z, &[2, 3, 4]);
    moved(&c.flatten(0, -1).unwrap(), &[24], &z, "flatten all");
    moved(&c.flatten(1, 2).unwrap(), &[2, 12], &z, "flatten 1..=2");
    moved(&c.flatten(0, 1).unwrap(), &[6, 4], &z, "flatten 0..=1");
    // Flattening a transposed view.
    let (zt, _) = permute(&z, &[2, 3, 4], &[1, 0, 2]);
    moved(
        &c.swapaxes(0, 1).unwrap().flatten(0, 1).unwrap(),
        &[6, 4],
        &zt,
        "flatten transposed",
    );
}

/// Python slicing of one axis: the indices `start, start+step, ...` before `stop`.
fn slice_indices(start: i32, stop: i32, step: i32) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        i += step;
    }
    out
}

fn naive_slice(
    x: &[f32],
    shape: &[i32],
    start: &[i32],
    stop: &[i32],
    step: &[i32],
) -> (Vec<f32>, Vec<i32>) {
    let picks: Vec<Vec<usize>> = (0..shape.len())
        .map(|d| slice_indices(start[d], stop[d], step[d]))
        .collect();
    let out_shape: Vec<i32> = picks.iter().map(|p| p.len() as i32).collect();
    let out = (0..numel(&out_shape))
        .map(|flat| {
            let o = unravel(flat, &out_shape);
            let src: Vec<usize> = o.iter().enumerate().map(|(d, &i)| picks[d][i]).collect();
            x[ravel(&src, shape)]
        })
        .collect();
    (out, out_shape)
}

#[test]
fn slices_with_strides() {
    let shape = [4, 5, 6];
    let x = data(6, 120);
    let a = arr(&x, &shape);
    let cases: &[([i32; 3], [i32; 3], [i32; 3])] = &[
        ([0, 0, 0], [4, 5, 6], [1, 1, 1]),
        ([1, 2, 0], [3, 5, 6], [1, 1, 2]),
        ([0, 1, 1], [4, 4, 6], [2, 3, 2]),
        ([3, 0, 5], [4, 5, 6], [1, 2, 1]),
    ];
    for (start, stop, step) in cases {
        let (e, s) = naive_slice(&x, &shape, start, stop, step);
        moved(
            &a.slice(start, stop, step).unwrap(),
            &s,
            &e,
            &format!("slice {start:?}..{stop:?} by {step:?}"),
        );
    }
    // A negative stride walks backwards.
    let v = data(7, 6);
    let r = arr(&v, &[6]).slice(&[4], &[0], &[-1]).unwrap();
    let e: Vec<f32> = [4, 3, 2, 1].iter().map(|&i| v[i]).collect();
    moved(&r, &[4], &e, "reverse slice");

    // slice_axis, including a negative axis and a non-contiguous input.
    let (e, s) = naive_slice(&x, &shape, &[0, 1, 0], &[4, 4, 6], &[1, 1, 1]);
    moved(&a.slice_axis(1, 1, 4).unwrap(), &s, &e, "slice_axis 1");
    let (e, s) = naive_slice(&x, &shape, &[0, 0, 2], &[4, 5, 5], &[1, 1, 1]);
    moved(&a.slice_axis(-1, 2, 5).unwrap(), &s, &e, "slice_axis -1");
    let (xt, ts) = permute(&x, &shape, &[2, 0, 1]); // [6, 4, 5]
    let (e, s) = naive_slice(&xt, &ts, &[1, 0, 0], &[3, 4, 5], &[1, 1, 1]);
    moved(
        &a.transpose(&[2, 0, 1])
            .unwrap()
            .slice_axis(0, 1, 3)
            .unwrap(),
        &s,
        &e,
        "slice_axis of transposed",
    );
}

#[test]
fn slice_update_writes_a_strided_window() {
    let shape = [4, 6];
    let x = data(8, 24);
    let u = data(9, 6);
    let (start, stop, step) = ([1, 0], [4, 6], [2, 2]); // rows 1, 3; cols 0, 2, 4
    let r = arr(&x, &shape)
        .slice_update(&arr(&u, &[2, 3]), &start, &stop, &step)
        .unwrap();
    let mut e = x.clone();
    for (ui, row) in [1usize, 3].iter().enumerate() {
        for (uj, col) in [0usize, 2, 4].iter().enumerate() {
            e[row * 6 + col] = u[ui * 3 + uj];
        }
    }
    moved(&r, &shape, &e, "slice_update");
    // The source array is unchanged (functional update).
    moved(&arr(&x, &shape), &shape, &x, "source unchanged");
    // A broadcast update (a single row written into rows 0..2).
    let row = data(10, 6);
    let r = arr(&x, &shape)
        .slice_update(&arr(&row, &[6]), &[0, 0], &[2, 6], &[1, 1])
        .unwrap();
    let mut e = x.clone();
    e[..6].copy_from_slice(&row);
    e[6..12].copy_from_slice(&row);
    moved(&r, &shape, &e, "broadcast slice_update");
}

#[test]
fn as_strided_frames_a_signal_like_an_stft() {
    let signal = data(11, 20);
    let (frame, hop) = (6usize, 3usize);
    let n_frames = (signal.len() - frame) / hop + 1;
    let a = arr(&signal, &[20]);
    for offset in [0usize, 2] {
        let nf = (signal.len() - offset - frame) / hop + 1;
        let r = a
            .as_strided(&[nf as i32, frame as i32], &[hop as i64, 1], offset)
            .unwrap();
        let e: Vec<f32> = (0..nf)
            .flat_map(|f| (0..frame).map(move |t| (f, t)))
            .map(|(f, t)| signal[offset + f * hop + t])
            .collect();
        moved(
            &r,
            &[nf as i32, frame as i32],
            &e,
            &format!("frames offset {offset}"),
        );
    }
    assert_eq!(n_frames, 5);
    // Framing and then reducing: per-frame energy.
    let r = a
        .as_strided(&[n_frames as i32, frame as i32], &[hop as i64, 1], 0)
        .unwrap()
        .square()
        .unwrap()
        .sum(&[1], false)
        .unwrap();
    let e: Vec<f64> = (0..n_frames)
        .map(|f| {
            (0..frame)
                .map(|t| (signal[f * hop + t] as f64).powi(2))
                .sum()
        })
        .collect();
    check(&r, &[n_frames as i32], &e, 1e-6, 1e-5, "frame energy");
    // On a transposed input the strides address its logical row-major order.
    let m = data(12, 12);
    let (mt, _) = permute(&m, &[3, 4], &[1, 0]);
    let r = arr(&m, &[3, 4])
        .transpose(&[])
        .unwrap()
        .as_strided(&[3, 4], &[4, 1], 0)
        .unwrap();
    moved(&r, &[3, 4], &mt, "as_strided of transposed");
}

#[test]
fn pad_with_constant() {
    let x = data(13, 6);
    let r = arr(&x, &[2, 3])
        .pad(&[0, 1], &[1, 0], &[2, 1], 7.5)
        .unwrap();
    let (rows, cols) = (2 + 1 + 2, 3 + 1);
    let mut e = vec![7.5f32; rows * cols];
    for i in 0..2 {
        for j in 0..3 {
            e[(i + 1) * cols + j] = x[i * 3 + j];
        }
    }
    moved(&r, &[rows as i32, cols as i32], &e, "pad");
    // One negative axis only.
    let r = arr(&x, &[2, 3]).pad(&[-1], &[2], &[0], 0.0).unwrap();
    let mut e = Vec::new();
    for i in 0..2 {
        e.extend([0.0, 0.0]);
        e.extend(&x[i * 3..i * 3 + 3]);
    }
    moved(&r, &[2, 5], &e, "pad last axis");
    // Integer arrays pad with the value converted to their dtype.
    let r = i32s(&[1, 2], &[2]).pad(&[0], &[1], &[1], -3.0).unwrap();
    assert_eq!(r.dtype(), Dtype::I32);
    assert_eq!(r.to_vec::<i32>().unwrap(), vec![-3, 1, 2, -3]);
}

#[test]
fn take_gathers_along_an_axis() {
    let shape = [3, 4];
    let x = data(14, 12);
    let a = arr(&x, &shape);
    // 1-D indices along axis 0 (with repeats).
    let idx = [2, 0, 2];
    let e: Vec<f32> = idx
        .iter()
        .flat_map(|&r| x[r as usize * 4..r as usize * 4 + 4].to_vec())
        .collect();
    moved(
        &a.take(&i32s(&idx, &[3]), 0).unwrap(),
        &[3, 4],
        &e,
        "take axis 0",
    );
    // 2-D indices along axis -1: out[i, p, q] = x[i, idx[p, q]].
    let idx2 = [3, 1, 0, 3];
    let e: Vec<f32> = (0..3)
        .flat_map(|i| idx2.iter().map(move |&j| (i, j as usize)))
        .map(|(i, j)| x[i * 4 + j])
        .collect();
    moved(
        &a.take(&i32s(&idx2, &[2, 2]), -1).unwrap(),
        &[3, 2, 2],
        &e,
        "take 2-D indices",
    );
    // Unsigned indices work too.
    let r = a
        .take(&Array::from_slice(&[1u32, 3], &[2]).unwrap(), 1)
        .unwrap();
    let e: Vec<f32> = (0..3).flat_map(|i| [x[i * 4 + 1], x[i * 4 + 3]]).collect();
    moved(&r, &[3, 2], &e, "take u32");
}

#[test]
fn take_along_axis_pairs_indices_with_lanes() {
    let shape = [3, 4];
    let x = data(15, 12);
    let a = arr(&x, &shape);
    let idx = [3, 0, 1, 1, 2, 0]; // [3, 2] along axis 1
    let e: Vec<f32> = (0..6).map(|p| x[(p / 2) * 4 + idx[p] as usize]).collect();
    moved(
        &a.take_along_axis(&i32s(&idx, &[3, 2]), 1).unwrap(),
        &[3, 2],
        &e,
        "take_along_axis 1",
    );
    let idx0 = [2, 0, 1, 2]; // [1, 4] along axis 0, one row
    let e: Vec<f32> = (0..4).map(|j| x[idx0[j] as usize * 4 + j]).collect();
    moved(
        &a.take_along_axis(&i32s(&idx0, &[1, 4]), -2).unwrap(),
        &[1, 4],
        &e,
        "take_along_axis -2",
    );
}

#[test]
fn concatenate_and_stack() {
    let (p, q, r) = (data(16, 6), data(17, 4), data(18, 3));
    let (a, b) = (arr(&p, &[2, 3]), arr(&q, &[2, 2]));
    let e: Vec<f32> = (0..2)
        .flat_map(|i| {
            let mut row = p[i * 3..i * 3 + 3].to_vec();
            row.extend(&q[i * 2..i * 2 + 2]);
            row
        })
        .collect();
    moved(
        &concatenate(&[&a, &b], -1).unwrap(),
        &[2, 5],
        &e,
        "concat axis -1",
    );
    let c = arr(&r, &[1, 3]);
    let mut e = p.clone();
    e.extend(&r);
    moved(
        &concatenate(&[&a, &c], 0).unwrap(),
        &[3, 3],
        &e,
        "concat axis 0",
    );
    // A transposed input.
    let at = arr(&p, &[3, 2]).transpose(&[]).unwrap(); // [2, 3]
    let (pt, _) = permute(&p, &[3, 2], &[1, 0]);
    let mut e = pt.clone();
    e.extend(&r);
    moved(
        &concatenate(&[&at, &c], 0).unwrap(),
        &[3, 3],
        &e,
        "concat transposed",
    );

    let (s1, s2, s3) = (data(19, 6), data(20, 6), data(21, 6));
    let arrays = [arr(&s1, &[2, 3]), arr(&s2, &[2, 3]), arr(&s3, &[2, 3])];
    let refs: Vec<&Array> = arrays.iter().collect();
    let srcs = [&s1, &s2, &s3];
    for (axis, shape) in [(0, [3, 2, 3]), (1, [2, 3, 3]), (-1, [2, 3, 3])] {
        let ax = norm_axis(axis, 3);
        let e: Vec<f32> = (0..18)
            .map(|flat| {
                let mut idx = unravel(flat, &shape);
                let which = idx.remove(ax);
                srcs[which][idx[0] * 3 + idx[1]]
            })
            .collect();
        moved(
            &stack(&refs, axis).unwrap(),
            &shape,
            &e,
            &format!("stack axis {axis}"),
        );
    }
}

#[test]
fn sort_and_argsort() {
    let shape = [3, 5];
    let x = data(22, 15);
    let a = arr(&x, &shape);
    for axis in [-1, 0, 1] {
        let ls = lanes(&x, &shape, axis);
        let sorted: Vec<Vec<f32>> = ls
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l.sort_by(f32::total_cmp);
                l
            })
            .collect();
        moved(
            &a.sort(axis).unwrap(),
            &shape,
            &from_lanes(&sorted, &shape, axis),
            &format!("sort axis {axis}"),
        );
        let order: Vec<Vec<u32>> = ls
            .iter()
            .map(|l| {
                let mut idx: Vec<u32> = (0..l.len() as u32).collect();
                idx.sort_by(|&i, &j| l[i as usize].total_cmp(&l[j as usize]));
                idx
            })
            .collect();
        let r = a.argsort(axis).unwrap();
        assert_eq!((r.shape(), r.dtype()), (shape.to_vec(), Dtype::U32));
        assert_eq!(
            r.to_vec::<u32>().unwrap(),
            from_lanes(&order, &shape, axis),
            "argsort axis {axis}"
        );
    }
    // Sorting a transposed view.
    let (xt, ts) = permute(&x, &shape, &[1, 0]);
    let sorted: Vec<Vec<f32>> = lanes(&xt, &ts, -1)
        .into_iter()
        .map(|mut l| {
            l.sort_by(f32::total_cmp);
            l
        })
        .collect();
    moved(
        &a.transpose(&[]).unwrap().sort(-1).unwrap(),
        &ts,
        &from_lanes(&sorted, &ts, -1),
        "sort transposed",
    );
}

#[test]
fn topk_returns_the_k_largest_as_a_set() {
    let shape = [4, 7];
    let x = data(23, 28);
    let a = arr(&x, &shape);
    for (k, axis) in [(3, -1), (1, 1), (7, 1), (2, 0)] {
        let r = a.topk(k, axis).unwrap();
        let mut out_shape = shape.to_vec();
        out_shape[norm_axis(axis, 2)] = k;
        assert_eq!(r.shape(), out_shape, "topk {k} axis {axis}");
        let got = lanes(&read(&r), &out_shape, axis);
        for (lane, got) in lanes(&x, &shape, axis).iter().zip(got) {
            let mut want = lane.clone();
            want.sort_by(|a, b| b.total_cmp(a));
            want.truncate(k as usize);
            want.sort_by(f32::total_cmp);
            let mut got = got.clone();
            got.sort_by(f32::total_cmp);
            assert_eq!(got, want, "topk {k} axis {axis}");
        }
    }
}

#[test]
fn argpartition_partitions_around_kth() {
    let shape = [3, 9];
    let x = data(24, 27);
    let a = arr(&x, &shape);
    for (kth, axis) in [(0, -1), (4, 1), (8, -1), (1, 0)] {
        let r = a.argpartition(kth, axis).unwrap();
        assert_eq!((r.shape(), r.dtype()), (shape.to_vec(), Dtype::U32));
        let idx_lanes = lanes(&r.to_vec::<u32>().unwrap(), &shape, axis);
        for (lane, idx) in lanes(&x, &shape, axis).iter().zip(idx_lanes) {
            // A permutation of the lane's positions...
            let mut seen = idx.clone();
            seen.sort();
            assert_eq!(seen, (0..lane.len() as u32).collect::<Vec<_>>());
            // ...with the kth smallest at position kth, smaller before, larger after.
            let vals: Vec<f32> = idx.iter().map(|&i| lane[i as usize]).collect();
            let mut sorted = lane.clone();
            sorted.sort_by(f32::total_cmp);
            let k = kth as usize;
            assert_eq!(vals[k], sorted[k], "kth {kth} axis {axis}");
            assert!(vals[..k].iter().all(|&v| v <= vals[k]));
            assert!(vals[k + 1..].iter().all(|&v| v >= vals[k]));
        }
    }
}
