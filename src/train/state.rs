//! Resumable training state and step checkpoints. A checkpoint is a folder
//! `DIR/checkpoints/step-NNNNNNNN/` holding the weights, the optimizer's moments and
//! `trainer_state.json`; it is written under a temporary name and renamed into place whole,
//! so a run killed at any moment leaves only complete checkpoints behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::schedule::Validation;
use crate::error::{Error, Result};

pub const CHECKPOINTS_DIR: &str = "checkpoints";
const STATE_FILE: &str = "trainer_state.json";
const WEIGHTS: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";

/// Everything besides tensors that a resumed run needs to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Updates done.
    pub step: usize,
    /// The epoch in progress (0-based) and how many of its batches are done.
    pub epoch: usize,
    pub batch_in_epoch: usize,
    /// How many batches the epoch in progress has (None in checkpoints older than this
    /// field): a resume whose flags or corpus split the epoch otherwise is refused.
    #[serde(default)]
    pub batches_in_epoch: Option<usize>,
    /// The data-order RNG as it was at the start of `epoch` (its batches are drawn again).
    pub epoch_rng: [u64; 4],
    /// The dropout RNG after the last update.
    pub dropout_rng: [u64; 4],
    pub validation: Validation,
    /// Non-finite updates in a row, and in all.
    pub bad_in_row: usize,
    pub skipped_updates: usize,
    /// Target tokens trained on and seconds spent in updates (for tokens/s).
    pub target_tokens: usize,
    pub train_secs: f64,
}

impl TrainerState {
    /// Refuses to go on with an epoch whose batches differ from the ones this state was cut
    /// from (`batches`: how many the data and flags give now): the position inside the epoch
    /// would then point at other data, or past its end. `out` is the run's folder.
    pub fn check_epoch_batching(&self, batches: usize, out: &Path) -> Result<()> {
        let saved = self.batches_in_epoch.unwrap_or(batches);
        if self.batch_in_epoch == 0 || (saved == batches && self.batch_in_epoch <= batches) {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "cannot resume {} at step {}: its checkpoint is {} batches into epoch {}, which it \
             split into {saved} batches, but the data and flags now split that epoch into \
             {batches}. --batch-tokens, --max-len or the corpus files changed since the run was \
             saved; resume with the run's own values (DIR/train_config.toml holds them), or \
             start a new run in another --out",
            out.display(),
            self.step,
            self.batch_in_epoch,
            self.epoch + 1,
        )))
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::write(path, e)
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

fn sync_dir(path: &Path) {
    // Makes a rename durable; not every filesystem allows opening a directory, so best effort.
    if let Ok(d) = std::fs::File::open(path) {
        let _ = d.sync_all();
    }
}

/// Writes checkpoint `state.step` into `dir`/checkpoints and returns its folder.
pub fn save(
    dir: &Path,
    state: &TrainerState,
    weights: &HashMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
) -> Result<PathBuf> {
    let root = dir.join(CHECKPOINTS_DIR);
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let name = format!("step-{:08}", state.step);
    let done = root.join(&name);
    if done.is_dir() {
        return Ok(done); // this step is saved already (e.g. save-every at an epoch end)
    }
    let tmp = root.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    let save_tensors = |file: &str, t: &HashMap<String, Tensor>| -> Result<()> {
        let path = tmp.join(file);
        candle_core::safetensors::save(t, &path)
            .map_err(|e| Error::write(&path, std::io::Error::other(e.to_string())))?;
        sync_file(&path)
    };
    save_tensors(WEIGHTS, weights)?;
    save_tensors(OPTIMIZER, optimizer)?;
    let json = serde_json::to_string_pretty(state).map_err(|e| Error::Training(e.to_string()))?;
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, json).map_err(io(&state_path))?;
    sync_file(&state_path)?;
    // Test hook: widen the window in which a kill lands inside a save.
    if let Some(ms) = std::env::var("NMT_TEST_SAVE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    std::fs::rename(&tmp, &done).map_err(io(&done))?;
    sync_dir(&root);
    Ok(done)
}

/// The step number of a checkpoint folder name `step-NNNNNNNN`.
fn step_of(path: &Path) -> Option<usize> {
    path.file_name()?
        .to_str()?
        .strip_prefix("step-")?
        .parse()
        .ok()
}

/// Complete checkpoints of `dir`, oldest first. Leftovers of interrupted saves are removed.
pub fn list(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let root = dir.join(CHECKPOINTS_DIR);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        } else if let Some(step) = step_of(&path) {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes all but the newest `keep` checkpoints, never the one at `best_step`.
pub fn prune(dir: &Path, keep: usize, best_step: usize) -> Result<()> {
    let all = list(dir)?;
    let cut = all.len().saturating_sub(keep);
    for (step, path) in &all[..cut] {
        if *step != best_step {
            std::fs::remove_dir_all(path).map_err(io(path))?;
        }
    }
    Ok(())
}

/// What a checkpoint holds.
pub struct Checkpoint {
    pub state: TrainerState,
    pub weights: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

/// Reads only the trainer state of the checkpoint in folder `path`.
pub fn read_state(path: &Path) -> Result<TrainerState> {
    let state_path = path.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path)
        .map_err(|e| Error::checkpoint(&state_path, format!("cannot be read: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::checkpoint(&state_path, format!("is not a valid trainer state: {e}")))
}

/// Reads the checkpoint in folder `path`.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let state = read_state(path)?;
    let read = |file: &str| {
        let p = path.join(file);
        candle_core::safetensors::load(&p, device)
            .map_err(|e| Error::checkpoint(&p, format!("cannot read it: {e}")))
    };
    Ok(Checkpoint {
        state,
        weights: read(WEIGHTS)?,
        optimizer: read(OPTIMIZER)?,
    })
}
