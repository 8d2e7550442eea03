//! The fused layer as a Candle custom op: the forward on the op's inputs, and a backward that
//! hands Candle's autograd the gradients of `x`, the weight block and `[h0, c0]`. Training on
//! the CPU calls the fused layer directly (`model::train_step`); autograd over this op is the
//! reference the tests hold that step to.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::fused_layer::LstmLayerOp;
use super::weights::{weight_block, Weights};
use crate::tensor_data::{cpu_f32, storage_f32};

impl CustomOp3 for LstmLayerOp {
    fn name(&self) -> &'static str {
        "lstm-layer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s1, l1, "x").map_err(candle_core::Error::wrap)?;
        let w = cpu_f32(s2, l2, "w").map_err(candle_core::Error::wrap)?;
        let hc0 = cpu_f32(s3, l3, "hc0").map_err(candle_core::Error::wrap)?;
        let (out, act) = self.forward(x, &Weights::of_block(w, self.hidden), hc0);
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some(act);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        hc0: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [x, w, hc0, res, grad_res] = [x, w, hc0, res, grad_res].map(|t| t.contiguous());
        let (x, w, hc0, res, grad_res) = (x?, w?, hc0?, res?, grad_res?);
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner()).take();
        let grads = {
            let (xs, xl) = x.storage_and_layout();
            let (ws, wl) = w.storage_and_layout();
            let (hs, hl) = hc0.storage_and_layout();
            let (rs, rl) = res.storage_and_layout();
            let (gs, gl) = grad_res.storage_and_layout();
            let wrap = candle_core::Error::wrap;
            let (xv, wv, hv) = (
                storage_f32(&xs, xl, "x").map_err(wrap)?,
                storage_f32(&ws, wl, "w").map_err(wrap)?,
                storage_f32(&hs, hl, "hc0").map_err(wrap)?,
            );
            let wv = Weights::of_block(wv, self.hidden);
            // Backward twice over one graph: the activations were handed out; recompute.
            let act = match saved {
                Some(a) => a,
                None => self.forward(xv, &wv, hv).1,
            };
            self.backward(
                xv,
                &wv,
                hv,
                storage_f32(&rs, rl, "lstm output").map_err(wrap)?,
                &act,
                storage_f32(&gs, gl, "lstm output gradient").map_err(wrap)?,
            )
        };
        let dev = res.device();
        let d_w = weight_block(&grads.w_ih, &grads.w_hh, &grads.b);
        Ok((
            Some(Tensor::from_vec(grads.x, x.shape(), dev)?),
            Some(Tensor::from_vec(d_w, w.shape(), dev)?),
            Some(Tensor::from_vec(grads.hc0, hc0.shape(), dev)?),
        ))
    }
}
