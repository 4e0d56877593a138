//! `nn::Lstm` loaded from PyTorch-named weights against a plain f64 loop of
//! PyTorch's LSTM equations (input product, both biases, gates input,
//! forget, cell, output): forward and reverse, from zeros and from a given
//! state, and across chained calls.

use std::collections::BTreeMap;

use asr_models::nn::{Lstm, LstmState};
use asr_models::weights::Weights;
use mlx::Array;

/// Deterministic values in about [-scale, scale].
fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.731 + seed as f32 * 1.37).sin() * scale)
        .collect()
}

fn array(data: &[f32], shape: &[i32]) -> Array {
    Array::from_slice(data, shape).unwrap()
}

struct Params {
    input: usize,
    hidden: usize,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

impl Params {
    fn new(input: usize, hidden: usize) -> Params {
        let scale = 1.5 / (hidden as f32).sqrt();
        Params {
            input,
            hidden,
            w_ih: values(4 * hidden * input, 1, scale),
            w_hh: values(4 * hidden * hidden, 2, scale),
            b_ih: values(4 * hidden, 3, 0.5),
            b_hh: values(4 * hidden, 4, 0.5),
        }
    }

    /// The layer as `nn.LSTM` stores its first layer (suffix `_l0`).
    fn load(&self) -> Lstm {
        let (i, h) = (self.input as i32, self.hidden as i32);
        let entries = [
            ("rnn.weight_ih_l0", array(&self.w_ih, &[4 * h, i])),
            ("rnn.weight_hh_l0", array(&self.w_hh, &[4 * h, h])),
            ("rnn.bias_ih_l0", array(&self.b_ih, &[4 * h])),
            ("rnn.bias_hh_l0", array(&self.b_hh, &[4 * h])),
        ];
        let map: BTreeMap<String, Array> = entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        Lstm::load(&Weights::new(map, None), "rnn", "_l0", i, h).unwrap()
    }

    /// Every step's h [B, T, H] in input order, then the last h and c.
    fn reference(
        &self,
        x: &[f32],
        batch: usize,
        steps: usize,
        state: Option<(&[f32], &[f32])>,
        reverse: bool,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (n, h) = (self.input, self.hidden);
        let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let (mut hs, mut cs) = match state {
            Some((h0, c0)) => (wide(h0), wide(c0)),
            None => (vec![0.0; batch * h], vec![0.0; batch * h]),
        };
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut y = vec![0.0; batch * steps * h];
        let order: Vec<usize> = if reverse {
            (0..steps).rev().collect()
        } else {
            (0..steps).collect()
        };
        for t in order {
            for b in 0..batch {
                let xt = &x[(b * steps + t) * n..][..n];
                let gate = |g: usize| {
                    let from_x: f64 = (0..n)
                        .map(|k| xt[k] as f64 * self.w_ih[g * n + k] as f64)
                        .sum();
                    let from_h: f64 = (0..h)
                        .map(|k| hs[b * h + k] * self.w_hh[g * h + k] as f64)
                        .sum();
                    from_x + from_h + self.b_ih[g] as f64 + self.b_hh[g] as f64
                };
                let gates: Vec<f64> = (0..4 * h).map(gate).collect();
                for u in 0..h {
                    let cell = sigmoid(gates[h + u]) * cs[b * h + u]
                        + sigmoid(gates[u]) * gates[2 * h + u].tanh();
                    cs[b * h + u] = cell;
                    y[(b * steps + t) * h + u] = sigmoid(gates[3 * h + u]) * cell.tanh();
                }
            }
            for b in 0..batch {
                let from = (b * steps + t) * h;
                hs[b * h..(b + 1) * h].copy_from_slice(&y[from..from + h]);
            }
        }
        (y, hs, cs)
    }
}

fn assert_close(what: &str, got: &Array, want: &[f64]) {
    let got = got.to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&a, &e)) in got.iter().zip(want).enumerate() {
        assert!(
            (a as f64 - e).abs() <= 1e-5,
            "{what}[{i}]: got {a}, expected {e}"
        );
    }
}

#[test]
fn lstm_layer_matches_the_pytorch_equations() {
    // Odd widths, one sequence and several, both directions, with and
    // without an initial state.
    for (batch, steps, input, hidden, reverse, with_state) in [
        (1, 7, 5, 12, false, false),
        (3, 6, 40, 32, true, true),
        (4, 5, 60, 128, true, false),
        (2, 3, 9, 64, false, true),
    ] {
        let p = Params::new(input, hidden);
        let lstm = p.load();
        let x = values(batch * steps * input, 5, 1.0);
        let h0 = values(batch * hidden, 6, 0.9);
        let c0 = values(batch * hidden, 7, 2.0);
        let (b, t, h) = (batch as i32, steps as i32, hidden as i32);
        let state = LstmState {
            h: array(&h0, &[b, h]),
            c: array(&c0, &[b, h]),
        };
        let given = with_state.then_some(&state);
        let (y, out) = lstm
            .forward(&array(&x, &[b, t, input as i32]), given, reverse)
            .unwrap();
        let (wy, wh, wc) = p.reference(
            &x,
            batch,
            steps,
            with_state.then_some((&h0[..], &c0[..])),
            reverse,
        );
        let what = format!("B={batch} T={steps} in={input} H={hidden} reverse={reverse}");
        assert_eq!(y.shape(), [b, t, h], "{what}");
        assert_close(&format!("{what} y"), &y, &wy);
        assert_close(&format!("{what} h"), &out.h, &wh);
        assert_close(&format!("{what} c"), &out.c, &wc);
    }
}

#[test]
fn lstm_state_carries_across_calls() {
    let p = Params::new(8, 16);
    let lstm = p.load();
    let x = values(2 * 9 * 8, 8, 1.0);
    let (wy, wh, wc) = p.reference(&x, 2, 9, None, false);
    let whole = array(&x, &[2, 9, 8]);
    let mut state = None;
    let mut parts = Vec::new();
    for (from, to) in [(0, 2), (2, 3), (3, 9)] {
        let (y, s) = lstm
            .forward(
                &whole.slice_axis(1, from, to).unwrap(),
                state.as_ref(),
                false,
            )
            .unwrap();
        parts.push(y);
        state = Some(s);
    }
    let y = mlx::concatenate(&parts.iter().collect::<Vec<_>>(), 1).unwrap();
    let state = state.unwrap();
    assert_close("chained y", &y, &wy);
    assert_close("chained h", &state.h, &wh);
    assert_close("chained c", &state.c, &wc);
}
