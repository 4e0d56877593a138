//! `kernels::lstm`, an LSTM layer's recurrence, against a plain f64 loop of
//! the LSTM equations (PyTorch's gate order) on random weights: one sequence
//! and many (steps run on one thread and split over the kernels' threads),
//! one step, hidden sizes not a multiple of the kernels' vector width, reverse, non-zero initial states,
//! at every instruction-set level this CPU supports and with the kernels off
//! (MLX's ops step by step).
//!
//! Tolerance: `|got - want| <= 2e-6 + 2e-6 |want|`. Each step's products sum
//! up to 256 f32 terms of magnitude below 1 (about 1e-7 relative each) and
//! the exponentials are within a few ulp; the gates' derivatives are at most
//! 1, so the per-step error stays near 1e-6 over these sequences.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::*;
use mlx::kernels;
use mlx::Array;

/// Tests in this file flip the process-wide kernel switch: one at a time.
static SWITCH: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    let guard = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    kernels::set_custom_kernels(true);
    guard
}

const ATOL: f64 = 2e-6;
const RTOL: f64 = 2e-6;

#[derive(Clone, Copy, Debug)]
struct Case {
    batch: usize,
    steps: usize,
    hidden: usize,
    reverse: bool,
    /// Random h0 and c0, else zeros.
    state: bool,
}

const fn case(batch: usize, steps: usize, hidden: usize, reverse: bool, state: bool) -> Case {
    Case {
        batch,
        steps,
        hidden,
        reverse,
        state,
    }
}

/// One sequence (Silero's cell) for a few steps (W_hh read unpacked) and for
/// more (packed), a few, odd hidden sizes, and batches large enough for the
/// kernels to split each step over their threads.
const CASES: [Case; 10] = [
    case(1, 1, 8, false, false),
    case(1, 1, 5, true, true),
    case(1, 9, 13, true, true),
    case(1, 20, 24, true, true),
    case(3, 5, 16, false, true),
    case(2, 6, 128, true, false),
    case(1, 4, 256, false, true),
    case(7, 3, 33, false, true),
    case(50, 3, 24, true, true),
    case(64, 4, 128, false, false),
];

/// The layer's inputs: projections (gate pre-activations up to ±4, so the
/// sigmoids and tanh reach their flat parts), `W_hh` scaled so that products
/// stay of order 1, and the state.
struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
}

impl Inputs {
    fn new(c: Case, seed: u64) -> Inputs {
        let (b, h) = (c.batch, c.hidden);
        let scale = 2.0 / (h as f32).sqrt();
        let state = |seed, lo, hi| {
            if c.state {
                rand_vec(seed, b * h, lo, hi)
            } else {
                vec![0.0; b * h]
            }
        };
        Inputs {
            x: rand_vec(seed, b * c.steps * 4 * h, -4.0, 4.0),
            w: rand_vec(seed + 1, 4 * h * h, -scale, scale),
            h0: state(seed + 2, -1.0, 1.0),
            c0: state(seed + 3, -3.0, 3.0),
        }
    }

    fn arrays(&self, c: Case) -> [Array; 4] {
        let (b, t, h) = (c.batch as i32, c.steps as i32, c.hidden as i32);
        [
            arr(&self.x, &[b, t, 4 * h]),
            arr(&self.w, &[4 * h, h]),
            arr(&self.h0, &[b, h]),
            arr(&self.c0, &[b, h]),
        ]
    }

    /// The equations in f64: every step's h [B, T, H] in input order, then
    /// the last h and c.
    fn reference(&self, c: Case) -> [Vec<f64>; 3] {
        let (b, t, h) = (c.batch, c.steps, c.hidden);
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut hs = to_f64(&self.h0);
        let mut cs = to_f64(&self.c0);
        let mut y = vec![0.0; b * t * h];
        let order: Vec<usize> = if c.reverse {
            (0..t).rev().collect()
        } else {
            (0..t).collect()
        };
        for step in order {
            for row in 0..b {
                let x = &self.x[(row * t + step) * 4 * h..][..4 * h];
                let hp = &hs[row * h..][..h];
                let gates: Vec<f64> = (0..4 * h)
                    .map(|g| {
                        let w = &self.w[g * h..][..h];
                        x[g] as f64 + hp.iter().zip(w).map(|(a, &b)| a * b as f64).sum::<f64>()
                    })
                    .collect();
                for u in 0..h {
                    let i = sigmoid(gates[u]);
                    let f = sigmoid(gates[h + u]);
                    let g = gates[2 * h + u].tanh();
                    let o = sigmoid(gates[3 * h + u]);
                    let cell = f * cs[row * h + u] + i * g;
                    cs[row * h + u] = cell;
                    y[(row * t + step) * h + u] = o * cell.tanh();
                }
            }
            for row in 0..b {
                let (from, to) = ((row * t + step) * h, row * h);
                hs[to..to + h].copy_from_slice(&y[from..from + h]);
            }
        }
        [y, hs, cs]
    }
}

/// `kernels::lstm` on the case's arrays, checked against `want`; returns
/// every output's values, concatenated.
fn run_and_check(c: Case, arrays: &[Array; 4], want: &[Vec<f64>; 3], what: &str) -> Vec<f32> {
    let [x, w, h0, c0] = arrays;
    let (y, h, cell) = kernels::lstm(x, w, h0, c0, c.reverse).expect("lstm");
    let (b, t, hid) = (c.batch as i32, c.steps as i32, c.hidden as i32);
    check(&y, &[b, t, hid], &want[0], ATOL, RTOL, &format!("{what} y"));
    check(&h, &[b, hid], &want[1], ATOL, RTOL, &format!("{what} h"));
    check(&cell, &[b, hid], &want[2], ATOL, RTOL, &format!("{what} c"));
    [read(&y), read(&h), read(&cell)].concat()
}

#[test]
fn lstm_matches_the_equations_at_each_isa_level() {
    let _g = lock();
    for (n, &c) in CASES.iter().enumerate() {
        let inputs = Inputs::new(c, 100 + n as u64);
        let want = inputs.reference(c);
        let arrays = inputs.arrays(c);
        // Products of 128 terms or more round differently with FMA.
        let fma_visible = c.hidden >= 128;
        at_each_isa(&format!("lstm {c:?}"), fma_visible, |level| {
            run_and_check(c, &arrays, &want, &format!("{c:?} at {level}"))
        });
    }
}

#[test]
fn lstm_with_the_kernels_off_matches_the_equations() {
    let _g = lock();
    let previous = kernels::set_custom_kernels(false);
    for (n, &c) in CASES.iter().enumerate() {
        let inputs = Inputs::new(c, 200 + n as u64);
        let want = inputs.reference(c);
        run_and_check(c, &inputs.arrays(c), &want, &format!("{c:?} MLX ops"));
    }
    kernels::set_custom_kernels(previous);
}

#[test]
fn lstm_without_steps_returns_the_initial_state() {
    let _g = lock();
    for on in [true, false] {
        let previous = kernels::set_custom_kernels(on);
        let c = case(3, 0, 16, false, true);
        let inputs = Inputs::new(c, 7);
        let [x, w, h0, c0] = inputs.arrays(c);
        let (y, h, cell) = kernels::lstm(&x, &w, &h0, &c0, false).unwrap();
        assert_eq!(y.shape(), [3, 0, 16], "kernels {on}");
        assert_eq!(read(&h), inputs.h0, "kernels {on}");
        assert_eq!(read(&cell), inputs.c0, "kernels {on}");
        kernels::set_custom_kernels(previous);
    }
}

/// Streaming (Silero's blocks of frames): calls chained through the state
/// give the steps of one call over the whole sequence, bit for bit.
#[test]
fn lstm_in_chained_calls_equals_one_call() {
    let _g = lock();
    let c = case(2, 10, 24, false, true);
    let inputs = Inputs::new(c, 11);
    let [x, w, h0, c0] = inputs.arrays(c);
    let (y, h, cell) = kernels::lstm(&x, &w, &h0, &c0, false).unwrap();
    let (mut hs, mut cs, mut parts) = (h0, c0, Vec::new());
    for (from, to) in [(0, 1), (1, 4), (4, 10)] {
        let block = x.slice_axis(1, from, to).unwrap();
        let (yb, hb, cb) = kernels::lstm(&block, &w, &hs, &cs, false).unwrap();
        parts.push(yb);
        (hs, cs) = (hb, cb);
    }
    let joined = mlx::concatenate(&parts.iter().collect::<Vec<_>>(), 1).unwrap();
    assert_eq!(read(&joined), read(&y));
    assert_eq!(read(&hs), read(&h));
    assert_eq!(read(&cs), read(&cell));
}

/// Views in a lazy graph (a transposed product as the projections, a
/// broadcast state) are taken as their values.
#[test]
fn lstm_of_views_in_a_lazy_graph() {
    let _g = lock();
    let c = case(5, 6, 16, true, false);
    let inputs = Inputs::new(c, 13);
    let want = inputs.reference(c);
    let [x, w, _, _] = inputs.arrays(c);
    // The projections computed time-major, then viewed batch-major.
    let time_major = x
        .transpose(&[1, 0, 2])
        .unwrap()
        .multiply(&Array::scalar(1.0f32).unwrap())
        .unwrap();
    let batch_major = time_major.transpose(&[1, 0, 2]).unwrap();
    let zeros = Array::zeros(&[1, 16], mlx::Dtype::F32)
        .unwrap()
        .broadcast_to(&[5, 16])
        .unwrap();
    run_and_check(c, &[batch_major, w, zeros.clone(), zeros], &want, "views");
}

/// The kernels are on and the CPU runs them: the recurrence is one
/// primitive, so it gives other bits than MLX's ops (which round through
/// separate products and exponentials) on a case with long products.
#[test]
fn lstm_runs_as_the_kernels_primitive() {
    let _g = lock();
    assert!(kernels::custom_kernels());
    let _cap = IsaCap::set(kernels::supported_isa());
    let c = case(2, 5, 128, false, true);
    let inputs = Inputs::new(c, 17);
    let [x, w, h0, c0] = inputs.arrays(c);
    let run = || {
        let (y, _, _) = kernels::lstm(&x, &w, &h0, &c0, false).unwrap();
        read(&y)
    };
    let kernel = run();
    let previous = kernels::set_custom_kernels(false);
    let ops = run();
    kernels::set_custom_kernels(previous);
    assert_ne!(kernel, ops);
}
