//! LSTM layers with PyTorch's tensor names and gate order (i, f, g, o), and the stacked
//! wrapper. On the CPU each layer runs as one fused op (`fused_layer`, wrapped for Candle by
//! `candle_op`); on CUDA as one sequence op (`sequence_op`: the time loop inside, fused cell
//! kernels launched by `sequence_cuda`, the cell's gradient op in `cell_op`, launched by
//! `cell_cuda`); with `LstmPath::Reference` one cell per step in plain Candle ops
//! (`stepwise` over `reference`: the Metal path, and the oracle the tests compare the others
//! with).

mod candle_op;
pub mod cell;
#[cfg(feature = "cuda")]
mod cell_cuda;
mod cell_op;
pub mod fused_layer;
mod reference;
#[cfg(feature = "cuda")]
mod sequence_cuda;
mod sequence_op;
mod stepwise;
pub mod weights;

use candle_core::{DType, Device, Tensor};

use self::fused_layer::LstmLayerOp;
use super::dropout::Dropout;
use super::precision::Precision;
use crate::data::batch::StepMask;
use crate::error::Result;

/// How a layer runs its time loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LstmPath {
    /// One custom op per layer (CPU only).
    Fused,
    /// The time loop as one op per layer (`sequence_op`): per step one recurrent product and
    /// one fused cell kernel on CUDA (plain loops on the CPU), a hand-written backward.
    Cell,
    /// Step-by-step Candle ops; works on every device.
    Reference,
}

impl LstmPath {
    /// The fastest path for a device.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            LstmPath::Fused
        } else if device.is_cuda() {
            LstmPath::Cell
        } else {
            LstmPath::Reference
        }
    }
}

/// The (h, c) of every layer, each `(B, H)`.
#[derive(Debug, Clone)]
pub struct LstmState {
    pub h: Vec<Tensor>,
    pub c: Vec<Tensor>,
}

impl LstmState {
    pub fn zeros(layers: usize, batch: usize, hidden: usize, device: &Device) -> Result<Self> {
        let z = Tensor::zeros((batch, hidden), DType::F32, device)?;
        Ok(LstmState {
            h: vec![z.clone(); layers],
            c: vec![z; layers],
        })
    }

    /// Keeps rows `rows` `(R)` u32 (indices into the batch), in that order: every h and c
    /// becomes `(R, H)`.
    pub fn select_rows(&self, rows: &Tensor) -> Result<Self> {
        let pick = |ts: &[Tensor]| -> Result<Vec<Tensor>> {
            ts.iter().map(|t| Ok(t.index_select(rows, 0)?)).collect()
        };
        Ok(LstmState {
            h: pick(&self.h)?,
            c: pick(&self.c)?,
        })
    }
}

/// One layer: `weight_ih (4H, I)`, `weight_hh (4H, H)`, `bias_ih (4H)`, `bias_hh (4H)`.
#[derive(Debug, Clone)]
pub struct LstmLayer {
    pub weight_ih: Tensor,
    pub weight_hh: Tensor,
    pub bias_ih: Tensor,
    pub bias_hh: Tensor,
}

impl LstmLayer {
    pub fn hidden(&self) -> usize {
        self.weight_hh.dim(1).unwrap_or(0)
    }

    /// Runs the layer over `x (T, B, I)` from `h0, c0 (B, H)`.
    /// Returns every step's `h (T, B, H)` and the last step's `c (B, H)`.
    pub fn forward(
        &self,
        x: &Tensor,
        h0: &Tensor,
        c0: &Tensor,
        mask: Option<&StepMask>,
        path: LstmPath,
        precision: Precision,
    ) -> Result<(Tensor, Tensor)> {
        match path {
            LstmPath::Fused => self.forward_fused(x, h0, c0, mask),
            LstmPath::Cell => {
                self.forward_sequence(&self.project_input(x, precision)?, h0, c0, mask)
            }
            LstmPath::Reference => {
                self.forward_steps(&self.project_input(x, precision)?, h0, c0, mask)
            }
        }
    }

    /// Input projection for every step at once: `x (T, B, I)` -> `(T, B, 4H)`, biases folded in.
    fn project_input(&self, x: &Tensor, precision: Precision) -> Result<Tensor> {
        let (t, b, i) = x.dims3()?;
        let bias = (&self.bias_ih + &self.bias_hh)?;
        let xw = precision
            .product_wt(&x.reshape((t * b, i))?, &self.weight_ih)?
            .broadcast_add(&bias)?;
        Ok(xw.reshape((t, b, 4 * self.hidden()))?)
    }

    fn forward_fused(
        &self,
        x: &Tensor,
        h0: &Tensor,
        c0: &Tensor,
        mask: Option<&StepMask>,
    ) -> Result<(Tensor, Tensor)> {
        let (t, b, _) = x.dims3()?;
        let h = self.hidden();
        let op = LstmLayerOp::new(t, b, h, mask.map(|m| m.flags.clone()));
        // The op's weight layout: [W_ih | W_hh | b_ih + b_hh], one row per gate unit.
        let bias = (&self.bias_ih + &self.bias_hh)?.unsqueeze(1)?;
        let w = Tensor::cat(&[&self.weight_ih, &self.weight_hh, &bias], 1)?;
        let hc0 = Tensor::stack(&[h0, c0], 0)?.contiguous()?;
        let out = x.contiguous()?.apply_op3(&w, &hc0, op)?;
        let hs = out.narrow(0, 0, t * b * h)?.reshape((t, b, h))?;
        let c_last = out.narrow(0, t * b * h, b * h)?.reshape((b, h))?;
        Ok((hs, c_last))
    }
}

/// Layers stacked: layer k reads layer k-1's h sequence.
#[derive(Debug, Clone)]
pub struct StackedLstm {
    pub layers: Vec<LstmLayer>,
}

impl StackedLstm {
    /// `x (T, B, I)` from `state` -> top layer's `h (T, B, H)` and every layer's final state.
    /// With `dropout`, each layer's output is dropped out before the next layer reads it.
    pub fn forward(
        &self,
        x: &Tensor,
        state: &LstmState,
        mask: Option<&StepMask>,
        path: LstmPath,
        precision: Precision,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<(Tensor, LstmState)> {
        let t = x.dim(0)?;
        let mut input = x.clone();
        let mut last = LstmState {
            h: Vec::with_capacity(self.layers.len()),
            c: Vec::with_capacity(self.layers.len()),
        };
        for (k, layer) in self.layers.iter().enumerate() {
            if k > 0 {
                if let Some(d) = dropout.as_deref_mut() {
                    input = d.apply(&input)?;
                }
            }
            let (hs, c_last) =
                layer.forward(&input, &state.h[k], &state.c[k], mask, path, precision)?;
            last.h.push(hs.get(t - 1)?);
            last.c.push(c_last);
            input = hs;
        }
        Ok((input, last))
    }
}
