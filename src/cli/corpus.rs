//! Corpora by name: `--corpus multi30k|europarl --pair SRC-TGT` and `nmt corpus fetch`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::CorpusArgs;
use crate::data::corpus_dir::{CorpusDir, KnownCorpus};
use crate::data::{europarl, multi30k};

/// The corpora `--corpus` and `nmt corpus fetch` know.
const KNOWN: [&KnownCorpus; 2] = [&multi30k::MULTI30K, &europarl::EUROPARL];

/// The known corpus called `name`.
pub fn by_name(name: &str) -> Result<&'static KnownCorpus> {
    match KNOWN.iter().find(|c| c.name == name) {
        Some(c) => Ok(c),
        None => usage!(
            "unknown corpus `{name}`: the known corpora are {} (or give --src-file/--tgt-file)",
            KNOWN.map(|c| c.name).join(", ")
        ),
    }
}

/// The download cache of a known corpus, relative to the working directory.
fn cache(c: &KnownCorpus) -> PathBuf {
    Path::new("corpora").join(c.name)
}

/// Finds the corpus `c` ($NMT_CORPORA/NAME, else `dir`), fetching it into `dir` if needed.
fn locate(c: &KnownCorpus, dir: &Path) -> Result<CorpusDir> {
    Ok(match c.name {
        "europarl" => europarl::locate(dir)?,
        _ => multi30k::locate(dir)?,
    })
}

/// Fetches the corpus `c` into `dir`, checking what is already there.
fn fetch_into(c: &KnownCorpus, dir: &Path) -> Result<CorpusDir> {
    Ok(match c.name {
        "europarl" => europarl::fetch(dir)?,
        _ => multi30k::fetch(dir)?,
    })
}

/// The corpus folder and the (source, target) languages of `--corpus NAME --pair SRC-TGT`.
pub fn known_corpus(c: &CorpusArgs) -> Result<Option<(CorpusDir, String, String)>> {
    let Some(name) = &c.corpus else {
        return Ok(None);
    };
    let corpus = by_name(name)?;
    let (s, t) = corpus.pair(&c.pair)?;
    Ok(Some((locate(corpus, &cache(corpus))?, s, t)))
}

/// `nmt corpus fetch NAME [--dir DIR]`.
pub fn fetch(name: &str, dir: Option<&Path>) -> Result<()> {
    let corpus = by_name(name)?;
    let dir = dir.map_or_else(|| cache(corpus), Path::to_path_buf);
    let found = if std::env::var_os("NMT_CORPORA").is_some() {
        locate(corpus, &dir)?
    } else {
        fetch_into(corpus, &dir)?
    };
    println!("{name} is in {}", found.dir.display());
    Ok(())
}
