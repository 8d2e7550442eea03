//! The LSTM cell of one row, on plain slices: the gate activations and the new (c, h).

use crate::kernels::vexp::{sigmoid_in_place, tanh_in_place};

/// One LSTM cell for one row: activates `gates` `(4H)` in place (i, f, o sigmoid, g tanh)
/// and writes `c = f * c_prev + i * g` and `h = o * tanh(c)`.
pub fn lstm_cell(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let hidden = c.len();
    let (ifg, o) = gates.split_at_mut(3 * hidden);
    sigmoid_in_place(&mut ifg[..2 * hidden]);
    tanh_in_place(&mut ifg[2 * hidden..]);
    sigmoid_in_place(o);
    for j in 0..hidden {
        c[j] = ifg[hidden + j] * c_prev[j] + ifg[j] * ifg[2 * hidden + j];
    }
    h.copy_from_slice(c);
    tanh_in_place(h);
    h.iter_mut().zip(o.iter()).for_each(|(x, o)| *x *= o);
}
