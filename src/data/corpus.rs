//! Reading aligned corpus files (plain or gzip), with strict line counts.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// All lines of a text file, plain or gzip (detected by its magic bytes, not its name),
/// without line terminators (`\n` or `\r\n`) and without a leading UTF-8 byte-order mark.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let mut file = File::open(path).map_err(|e| Error::read(path, e))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::Corpus(format!(
            "{} is a folder; give the path of a text file inside it",
            path.display()
        )));
    }
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| Error::read(path, e))?;
    let file = File::open(path).map_err(|e| Error::read(path, e))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        lines_of(BufReader::new(MultiGzDecoder::new(file)), path, true)
    } else {
        lines_of(BufReader::new(file), path, false)
    }
}

/// The lines of `reader`, as `read_lines` gives them; `name` is what messages call it
/// (a path, or `<stdin>`), `gzip` whether a read error means a damaged compressed file.
pub fn lines_of(reader: impl BufRead, name: &Path, gzip: bool) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let bytes = line.map_err(|e| {
            if gzip {
                Error::Line {
                    path: name.to_path_buf(),
                    line: i + 1,
                    msg: format!(
                        "the gzip data is damaged or cut short ({e}); download or compress the file again"
                    ),
                }
            } else {
                Error::read(name, e)
            }
        })?;
        let mut text = String::from_utf8(bytes).map_err(|e| Error::Line {
            path: name.to_path_buf(),
            line: i + 1,
            msg: format!(
                "is not valid UTF-8 (byte {}); convert the file to UTF-8 (e.g. with iconv)",
                e.utf8_error().valid_up_to() + 1
            ),
        })?;
        if text.ends_with('\r') {
            text.pop();
        }
        if i == 0 && text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
        }
        lines.push(text);
    }
    Ok(lines)
}

/// Source and target lines of a parallel corpus: equal line counts, at least one line.
pub fn read_parallel(src: &Path, tgt: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let s = read_lines(src)?;
    let t = read_lines(tgt)?;
    if s.len() != t.len() {
        return Err(Error::LineCountMismatch {
            src_path: src.to_path_buf(),
            src_lines: s.len(),
            tgt_path: tgt.to_path_buf(),
            tgt_lines: t.len(),
        });
    }
    if s.iter().all(|l| l.trim().is_empty()) {
        return Err(Error::Corpus(format!(
            "{} is empty (no non-blank lines): give a corpus with at least one sentence pair",
            src.display()
        )));
    }
    Ok((s, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_plain_and_gzip_alike() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.txt");
        std::fs::write(&plain, "hallo welt\r\nzwei\n").unwrap();
        let gz = dir.path().join("a.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all("hallo welt\nzwei\n".as_bytes()).unwrap();
        enc.finish().unwrap();
        let want = vec!["hallo welt".to_string(), "zwei".to_string()];
        assert_eq!(read_lines(&plain).unwrap(), want);
        assert_eq!(read_lines(&gz).unwrap(), want);
    }

    #[test]
    fn mismatched_counts_name_both_files_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("src.txt");
        let b = dir.path().join("tgt.txt");
        std::fs::write(&a, "1\n2\n3\n").unwrap();
        std::fs::write(&b, "1\n2\n").unwrap();
        let msg = read_parallel(&a, &b).unwrap_err().to_string();
        assert!(msg.contains("src.txt has 3 lines"), "{msg}");
        assert!(msg.contains("tgt.txt has 2"), "{msg}");
    }

    #[test]
    fn empty_corpus_and_bad_utf8_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("empty.txt");
        std::fs::write(&a, "").unwrap();
        let msg = read_parallel(&a, &a).unwrap_err().to_string();
        assert!(msg.contains("empty.txt is empty"), "{msg}");
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, b"ok\n\xff\xfe\n").unwrap();
        let msg = read_lines(&bad).unwrap_err().to_string();
        assert!(msg.contains("bad.txt:2"), "{msg}");
    }
}
