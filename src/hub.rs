//! Models from the Hugging Face Hub: `--model org/name[@revision]` resolves through the Hub's
//! local cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub; the Hub's own
//! layout), downloading on a miss unless offline (`--offline` or HF_HUB_OFFLINE=1).

use std::path::{Path, PathBuf};

use hf_hub::{Repo, RepoType};

use crate::checkpoint::{CONFIG_FILE, SRC_TOKENIZER_FILE, TGT_TOKENIZER_FILE, WEIGHTS_FILE};
use crate::error::{Error, Result};

/// The files a model needs.
const MODEL_FILES: [&str; 4] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    SRC_TOKENIZER_FILE,
    TGT_TOKENIZER_FILE,
];

/// Where a `--model` value points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A local run folder.
    Dir(PathBuf),
    /// A Hub repository and revision (default `main`).
    Hub { repo: String, revision: String },
}

impl ModelRef {
    /// An existing path is a folder; otherwise `org/name` or `org/name@revision` is a Hub
    /// repository; anything else is taken as a (missing) folder, which loading then names.
    pub fn parse(s: &str) -> ModelRef {
        if Path::new(s).exists() {
            return ModelRef::Dir(PathBuf::from(s));
        }
        let (id, revision) = match s.split_once('@') {
            Some((id, rev)) => (id, rev),
            None => (s, "main"),
        };
        let valid_part = |p: &str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match id.split_once('/') {
            Some((org, name)) if valid_part(org) && valid_part(name) && !revision.is_empty() => {
                ModelRef::Hub {
                    repo: id.to_string(),
                    revision: revision.to_string(),
                }
            }
            _ => ModelRef::Dir(PathBuf::from(s)),
        }
    }
}

/// The Hub cache folder: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    hf_hub::Cache::default().path().clone()
}

/// True when HF_HUB_OFFLINE asks for no network.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
}

/// The cached copy of `file` at `revision` (a branch or tag through refs/, or a commit).
fn cached(cache: &Path, repo: &str, revision: &str, file: &str) -> Option<PathBuf> {
    let root = cache.join(Repo::new(repo.to_string(), RepoType::Model).folder_name());
    let commit = std::fs::read_to_string(root.join("refs").join(revision))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let path = root.join("snapshots").join(commit).join(file);
    path.is_file().then_some(path)
}

/// A local folder holding every model file of `model`.
pub fn resolve(model: &ModelRef, offline: bool) -> Result<PathBuf> {
    resolve_files(model, &MODEL_FILES, offline)
}

/// A local folder holding `files` of `model` (all from one snapshot).
pub fn resolve_files(model: &ModelRef, files: &[&str], offline: bool) -> Result<PathBuf> {
    let (repo, revision) = match model {
        ModelRef::Dir(dir) => return Ok(dir.clone()),
        ModelRef::Hub { repo, revision } => (repo, revision),
    };
    let cache = cache_dir();
    let mut folder: Option<PathBuf> = None;
    for &file in files {
        let path = match cached(&cache, repo, revision, file) {
            Some(p) => p,
            None if offline => {
                return Err(Error::Download(format!(
                    "{file} of {repo}@{revision} is not in the Hub cache {} (offline: HF_HUB_OFFLINE or --offline). Download it once with network access, or point HF_HUB_CACHE at a cache that has it",
                    cache.join(Repo::new(repo.clone(), RepoType::Model).folder_name()).display()
                )))
            }
            None => download(&cache, repo, revision, file)?,
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        match &folder {
            None => folder = Some(dir),
            Some(f) if *f != dir => {
                return Err(Error::Download(format!(
                    "the files of {repo}@{revision} are in different snapshots ({} and {}): the cache is inconsistent; remove {} and download again",
                    f.display(),
                    dir.display(),
                    f.display()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(folder.unwrap_or_default())
}

fn download(cache: &Path, repo: &str, revision: &str, file: &str) -> Result<PathBuf> {
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(cache.to_path_buf())
        .with_progress(false)
        .build()
        .map_err(|e| Error::Download(format!("cannot set up the Hub client: {e}")))?;
    api.repo(Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string()))
        .get(file)
        .map_err(|e| {
            Error::Download(format!(
                "{repo} is not a local folder, and fetching {file} of {repo}@{revision} from the Hub failed: {e}. Check the folder name or repository id and your network"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs() {
        assert_eq!(
            ModelRef::parse("org/name"),
            ModelRef::Hub {
                repo: "org/name".into(),
                revision: "main".into()
            }
        );
        assert_eq!(
            ModelRef::parse("org/name@v1.0"),
            ModelRef::Hub {
                repo: "org/name".into(),
                revision: "v1.0".into()
            }
        );
        assert_eq!(
            ModelRef::parse("checkpoints/a/b"),
            ModelRef::Dir("checkpoints/a/b".into())
        );
        assert_eq!(ModelRef::parse("./x/y"), ModelRef::Dir("./x/y".into()));
        assert_eq!(
            ModelRef::parse("/abs/path"),
            ModelRef::Dir("/abs/path".into())
        );
        assert_eq!(ModelRef::parse("src"), ModelRef::Dir("src".into()));
    }
}
