//! One training per run folder: `DIR/train.lock`, held locked by the operating system for
//! as long as the run lives. The lock goes with the process however it ends (a kill
//! included), so a folder is never left locked by a run that is gone.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

pub const LOCK_FILE: &str = "train.lock";

/// A held lock on a run folder; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Locks run folder `out` (creating the folder), or says which process holds it.
pub fn acquire(out: &Path) -> Result<RunLock> {
    std::fs::create_dir_all(out).map_err(|e| Error::write(out, e))?;
    let path = out.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::write(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("process {holder}")
            };
            return Err(Error::Usage(format!(
                "{} is in use: {who} is training in it (it holds {}). Wait for that run to \
                 end, stop it (Ctrl-C saves a checkpoint; then --resume), or choose another --out",
                out.display(),
                path.display()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(Error::write(&path, e)),
    }
    // Who holds it, for the message above; the lock itself does not depend on the content.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    Ok(RunLock { _file: file })
}
