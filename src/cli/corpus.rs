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

/// The corpus folder and the (source, target) languages of `--corpus NAME --pair SRC-TGT`.
pub fn known_corpus(c: &CorpusArgs) -> Result<Option<(CorpusDir, String, String)>> {
    let Some(name) = &c.corpus else {
        return Ok(None);
    };
    let corpus = by_name(name)?;
    let (s, t) = corpus.pair(&c.pair)?;
    Ok(Some((corpus.locate(&cache(corpus))?, s, t)))
}

/// `nmt corpus fetch NAME [--dir DIR]`.
pub fn fetch(name: &str, dir: Option<&Path>) -> Result<()> {
    let corpus = by_name(name)?;
    let dir = dir.map_or_else(|| cache(corpus), Path::to_path_buf);
    let found = if std::env::var_os("NMT_CORPORA").is_some() {
        corpus.locate(&dir)?
    } else {
        (corpus.fetch)(&dir)?
    };
    println!("{name} is in {}", found.dir.display());
    Ok(())
}
