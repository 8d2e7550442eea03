//! Multi30k: found as `KnownCorpus::locate` says (`$NMT_CORPORA/multi30k/`, else the cache
//! `corpora/multi30k/`), else its public raw files downloaded into the cache and their
//! SHA-256 verified.

use std::path::Path;

use super::corpus_dir::{CorpusDir, KnownCorpus};
use super::download::{self, check_digest};
use crate::error::{Error, Result};

/// Where the raw files are published (data/task1/raw of the Multi30k dataset repository).
const BASE_URL: &str = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw";

/// Environment variable naming a mirror of `BASE_URL` (same file names).
pub const MIRROR_ENV: &str = "NMT_MULTI30K_URL";

/// The splits and their file stems.
pub const SPLITS: [&str; 3] = ["train", "val", "test_2016_flickr"];
pub const LANGS: [&str; 3] = ["de", "en", "fr"];

/// SHA-256 of every published file (computed from verified copies).
const DIGESTS: [(&str, &str); 9] = [
    (
        "test_2016_flickr.de.gz",
        "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    ),
    (
        "test_2016_flickr.en.gz",
        "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    ),
    (
        "test_2016_flickr.fr.gz",
        "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    ),
    (
        "train.de.gz",
        "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    ),
    (
        "train.en.gz",
        "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    ),
    (
        "train.fr.gz",
        "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    ),
    (
        "val.de.gz",
        "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    ),
    (
        "val.en.gz",
        "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    ),
    (
        "val.fr.gz",
        "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    ),
];

/// Multi30k's splits and languages.
pub static MULTI30K: KnownCorpus = KnownCorpus {
    name: "multi30k",
    splits: SPLITS,
    langs: &LANGS,
    fetch,
};

/// Downloads every missing file into `dir` and checks every file's SHA-256.
pub fn fetch(dir: &Path) -> Result<CorpusDir> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let base = std::env::var(MIRROR_ENV).unwrap_or_else(|_| BASE_URL.to_string());
    for (name, digest) in DIGESTS {
        let path = dir.join(name);
        if !path.is_file() {
            let url = format!("{}/{name}", base.trim_end_matches('/'));
            let bytes = download::bytes(&url).map_err(|e| {
                Error::Download(format!(
                    "{name}: {e}. Without network access, copy the Multi30k files ({}) into a folder ROOT/multi30k/ and set NMT_CORPORA=ROOT",
                    DIGESTS.map(|d| d.0).join(", ")
                ))
            })?;
            check_digest(name, &download::sha256(&bytes), digest)?;
            let tmp = dir.join(format!("{name}.tmp"));
            std::fs::write(&tmp, &bytes).map_err(|e| Error::write(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::write(&path, e))?;
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::read(&path, e))?;
        check_digest(name, &download::sha256(&bytes), digest)?;
    }
    Ok(MULTI30K.at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_parsing() {
        assert_eq!(MULTI30K.pair("de-en").unwrap(), ("de".into(), "en".into()));
        assert!(MULTI30K
            .pair("de-xx")
            .unwrap_err()
            .to_string()
            .contains("de-xx"));
        assert!(MULTI30K.pair("en-en").is_err());
    }
}
