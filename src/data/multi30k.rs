//! Finding Multi30k: `$NMT_CORPORA/multi30k/`, else the download cache `corpora/multi30k/`,
//! else download the public raw files into that cache and verify their SHA-256.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

/// The folder a Multi30k copy lives in, with every file present.
#[derive(Debug, Clone)]
pub struct Multi30k {
    pub dir: PathBuf,
}

impl Multi30k {
    /// The file of `split` in `lang`, e.g. ("val", "de") -> DIR/val.de.gz.
    pub fn file(&self, split: &str, lang: &str) -> PathBuf {
        self.dir.join(format!("{split}.{lang}.gz"))
    }

    /// Parses "de-en" into ("de", "en"), checking both are Multi30k languages.
    pub fn pair(pair: &str) -> Result<(String, String)> {
        let parts: Vec<&str> = pair.split('-').collect();
        match parts.as_slice() {
            [a, b] if a != b && LANGS.contains(a) && LANGS.contains(b) => {
                Ok((a.to_string(), b.to_string()))
            }
            _ => Err(Error::Config(format!(
                "--pair `{pair}` is not a Multi30k pair: use two of de, en, fr joined by '-', e.g. de-en"
            ))),
        }
    }
}

fn complete(dir: &Path) -> bool {
    DIGESTS.iter().all(|(name, _)| dir.join(name).is_file())
}

/// Finds Multi30k, downloading it into `cache` (normally corpora/multi30k) when neither
/// `$NMT_CORPORA/multi30k` nor the cache holds it.
pub fn locate(cache: &Path) -> Result<Multi30k> {
    if let Some(root) = std::env::var_os("NMT_CORPORA") {
        let dir = PathBuf::from(root).join("multi30k");
        if complete(&dir) {
            return Ok(Multi30k { dir });
        }
        return Err(Error::Corpus(format!(
            "NMT_CORPORA is set, but {} does not hold all Multi30k files ({}): point NMT_CORPORA at the folder that contains multi30k/, or unset it to use {}",
            dir.display(),
            DIGESTS.map(|d| d.0).join(", "),
            cache.display()
        )));
    }
    if complete(cache) {
        return Ok(Multi30k {
            dir: cache.to_path_buf(),
        });
    }
    fetch(cache)
}

/// Downloads every missing file into `dir` and checks every file's SHA-256.
pub fn fetch(dir: &Path) -> Result<Multi30k> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let base = std::env::var(MIRROR_ENV).unwrap_or_else(|_| BASE_URL.to_string());
    for (name, digest) in DIGESTS {
        let path = dir.join(name);
        if !path.is_file() {
            let url = format!("{}/{name}", base.trim_end_matches('/'));
            let bytes = download(&url).map_err(|e| {
                Error::Download(format!(
                    "{name}: {e}. Without network access, copy the Multi30k files ({}) into a folder ROOT/multi30k/ and set NMT_CORPORA=ROOT",
                    DIGESTS.map(|d| d.0).join(", ")
                ))
            })?;
            check_digest(name, &bytes, digest)?;
            let tmp = dir.join(format!("{name}.tmp"));
            std::fs::write(&tmp, &bytes).map_err(|e| Error::write(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::write(&path, e))?;
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::read(&path, e))?;
        check_digest(name, &bytes, digest)?;
    }
    Ok(Multi30k {
        dir: dir.to_path_buf(),
    })
}

fn download(url: &str) -> std::result::Result<Vec<u8>, String> {
    let resp = ureq::get(url)
        .timeout(std::time::Duration::from_secs(60))
        .call()
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn check_digest(name: &str, bytes: &[u8], want: &str) -> Result<()> {
    let got = format!("{:x}", Sha256::digest(bytes));
    if got != want {
        return Err(Error::Download(format!(
            "{name} has SHA-256 {got}, expected {want}: the file is damaged or not the published one; delete it and fetch again"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_parsing() {
        assert_eq!(Multi30k::pair("de-en").unwrap(), ("de".into(), "en".into()));
        assert!(Multi30k::pair("de-xx")
            .unwrap_err()
            .to_string()
            .contains("de-xx"));
        assert!(Multi30k::pair("en-en").is_err());
    }

    #[test]
    fn digest_mismatch_is_named() {
        let msg = check_digest("val.de.gz", b"not it", DIGESTS[6].1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("val.de.gz has SHA-256"), "{msg}");
    }
}
