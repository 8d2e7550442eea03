//! Embedding lookups of the CPU training step and their gradients, as batch rows.

use candle_core::Tensor;

use super::{add, multiply};
use crate::error::{Error, Result};
use crate::model::dropout::Dropout;
use crate::optim::Gradient;
use crate::tensor_data::storage_f32;

/// Embedding rows of `ids`, `(len, E)`, with a dropout mask drawn and applied.
pub(super) fn embed_dropped(
    table: &Tensor,
    ids: &[u32],
    name: &str,
    dropout: &mut Option<&mut Dropout>,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let (v, e) = table.dims2()?;
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= v) {
        return Err(Error::Training(format!(
            "token id {id} is outside {name}'s {v} rows"
        )));
    }
    let mut x = Vec::with_capacity(ids.len() * e);
    {
        let (s, l) = table.storage_and_layout();
        let rows = storage_f32(&s, l, name)?;
        for &id in ids {
            x.extend_from_slice(&rows[id as usize * e..(id as usize + 1) * e]);
        }
    }
    let mask = dropout.as_deref_mut().and_then(|d| d.mask(x.len()));
    if let Some(m) = &mask {
        multiply(&mut x, m);
    }
    Ok((x, mask))
}

/// The gradient of an embedding table: each position's row of `d (len, E)` added into the
/// row of its token, kept as the rows of the batch's distinct tokens.
pub(super) fn embedding_grad(table: &Tensor, ids: &[u32], d: &[f32]) -> Result<Gradient> {
    let (v, e) = table.dims2()?;
    let mut slot = vec![u32::MAX; v];
    let (mut distinct, mut rows) = (Vec::new(), Vec::new());
    for (&id, row) in ids.iter().zip(d.chunks_exact(e)) {
        let s = &mut slot[id as usize];
        if *s == u32::MAX {
            *s = distinct.len() as u32;
            distinct.push(id);
            rows.extend_from_slice(row);
        } else {
            add(&mut rows[*s as usize * e..(*s as usize + 1) * e], row);
        }
    }
    Ok(Gradient::Rows {
        ids: distinct,
        rows,
    })
}
