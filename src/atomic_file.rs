//! Files written whole or not at all: the content goes to a temporary file beside the target,
//! which is synced and renamed over it only when complete, so a run killed mid-save leaves
//! the previous file as it was.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Test hook: `NMT_TEST_DISK_FULL=model.safetensors` makes every atomic write of a file of
/// that name fail as a full disk would (after its temporary file is written), so the
/// failure path of a real save can be exercised end to end.
fn disk_full_hook(name: &str, tmp: &Path) -> Result<()> {
    match std::env::var("NMT_TEST_DISK_FULL") {
        Ok(v) if v == name => Err(Error::write(
            tmp,
            std::io::Error::from_raw_os_error(28), // ENOSPC
        )),
        _ => Ok(()),
    }
}

/// Writes `path` atomically: `write` fills a temporary file beside it, which is synced and
/// renamed over `path` only when complete.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = write(&tmp)
        .and_then(|()| disk_full_hook(name, &tmp))
        .and_then(|()| {
            let f = std::fs::File::open(&tmp).map_err(|e| Error::write(&tmp, e))?;
            f.sync_all().map_err(|e| Error::write(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| Error::write(path, e))?;
            if let Some(dir) = path.parent() {
                // Persist the rename itself.
                if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                }) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes a text file atomically.
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::write(tmp, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::write(tmp, e))
    })
}
