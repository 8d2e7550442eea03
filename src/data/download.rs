//! Downloads of published corpus files and their SHA-256 checks.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// An agent that gives up on a silent connection but not on a long download.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build()
}

/// The body of `url`, at most 64 MiB.
pub fn bytes(url: &str) -> std::result::Result<Vec<u8>, String> {
    let resp = agent().get(url).call().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Streams the body of `url` into `path` (which must not exist yet) and returns its SHA-256;
/// on failure nothing is left at `path`.
pub fn to_file(url: &str, path: &Path) -> std::result::Result<String, String> {
    let result = (|| {
        let resp = agent().get(url).call().map_err(|e| e.to_string())?;
        let mut out = File::create_new(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = resp.into_reader();
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        out.sync_all()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(format!("{:x}", hash.finalize()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The SHA-256 of the file at `path`, in hex, read in pieces.
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::read(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::read(path, e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// Errors unless `got` is the published digest `want` of the file `name`.
pub fn check_digest(name: &str, got: &str, want: &str) -> Result<()> {
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
    fn digest_mismatch_is_named() {
        let msg = check_digest("val.de.gz", &sha256(b"not it"), "00")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("val.de.gz has SHA-256"), "{msg}");
    }

    #[test]
    fn file_digest_matches_the_bytes_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = vec![7u8; 3 << 20];
        std::fs::write(&path, &data).unwrap();
        assert_eq!(sha256_file(&path).unwrap(), sha256(&data));
    }

    #[test]
    fn failed_download_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.tgz");
        assert!(to_file("http://127.0.0.1:9/archive.tgz", &path).is_err());
        assert!(!path.exists());
    }
}
