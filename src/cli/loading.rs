//! Models named on the command line (a folder or a Hub id), loaded into a translator.

use std::path::PathBuf;

use anyhow::Result;

use super::SearchArgs;
use crate::checkpoint;
use crate::config::SearchConfig;
use crate::device;
use crate::hub::{self, ModelRef};
use crate::inference::Translator;

/// The local folder of a `--model` value (downloading a Hub model on a cache miss).
pub fn model_dir(model: &str, offline: bool) -> Result<PathBuf> {
    Ok(hub::resolve(
        &ModelRef::parse(model),
        offline || hub::offline_from_env(),
    )?)
}

pub fn translator(models: &[String], s: &SearchArgs, n_best: usize) -> Result<Translator> {
    let dev = device::pick(&s.device)?;
    let loaded = models
        .iter()
        .map(|m| {
            Ok((
                m.clone(),
                checkpoint::load(&model_dir(m, s.offline)?, &dev)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let search = SearchConfig {
        beam: s.beam,
        n_best,
        max_len_ratio: s.max_len_ratio,
        min_len: s.min_len,
        length_penalty: s.length_penalty,
        length_alpha: s.length_alpha,
        batch_size: s.batch_size,
    };
    Ok(Translator::new(loaded, search)?)
}
