//! The fuzz harnesses: what each cargo-fuzz target does with its input bytes. Shared by the
//! targets in fuzz_targets/ and by tests/fuzz_regressions.rs, which replays the inputs
//! under tests/fixtures/fuzz/ so a crash once found stays fixed.
//!
//! A harness may see any error nmt reports (that is the point: hostile bytes are refused);
//! it panics only where nmt broke a promise: a panic inside nmt, or a result that breaks an
//! invariant checked here.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;
use nmt::checkpoint::{self, Loaded};
use nmt::config::{LengthPenalty, ModelConfig, SearchConfig};
use nmt::data::batch::{encode_pairs, token_batches};
use nmt::data::corpus::read_parallel;
use nmt::inference::Translator;
use nmt::model::{params, Seq2Seq};
use nmt::tokenizer::{SubwordTokenizer, SPECIALS};

/// A file of the repository's toy corpus (the tests build in the repository root, the
/// fuzz targets in fuzz/).
fn toy(name: &str) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if crate_dir.ends_with("fuzz") {
        crate_dir.parent().unwrap()
    } else {
        crate_dir
    };
    root.join("corpora/toy").join(name)
}

/// A folder that lives as long as the process (fuzzers end with `exit`).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
}

/// The toy model's folder: byte-level BPE (300 entries) trained on corpora/toy, 2 layers
/// of 8 cells with seeded weights, saved the way `nmt train` saves a checkpoint.
pub fn toy_model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("toy-model");
        std::fs::create_dir_all(&dir).unwrap();
        let tok = |file: &str| {
            let (lines, _) = read_parallel(&toy(file), &toy(file)).unwrap();
            SubwordTokenizer::train(lines.into_iter(), 300).unwrap()
        };
        let (src_tok, tgt_tok) = (tok("train.de"), tok("train.en"));
        let cfg = ModelConfig {
            src_vocab: src_tok.vocab_size(),
            tgt_vocab: tgt_tok.vocab_size(),
            emb: 8,
            hidden: 8,
            layers: 2,
            ..ModelConfig::default()
        };
        let tensors = params::init_uniform(&cfg, 7, &Device::Cpu).unwrap();
        let model = Seq2Seq::from_tensors(&cfg, &tensors).unwrap();
        checkpoint::save_model(&dir, &model).unwrap();
        checkpoint::save_tokenizers(&dir, &src_tok, &tgt_tok).unwrap();
        dir
    })
}

/// Splits `data` as `[u32 little-endian n][n bytes][the rest]` (n clipped to what is there).
pub fn split_framed(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 4 {
        return (data, &[]);
    }
    let n = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let rest = &data[4..];
    rest.split_at(n.min(rest.len()))
}

/// The framing `split_framed` reads.
pub fn framed(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut out = (first.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

/// Corpus reading and tokenisation: `data` is `[flags][framed source file, target file]`.
/// Both files go through `read_parallel` (plain or gzip by magic bytes), the pairs through
/// the toy tokenizers and the batcher; flag bit 0 also trains a BPE on the source lines.
///
/// Checked: equal line counts; each kept pair in exactly one batch; text without special
/// tokens round-trips through a trained tokenizer exactly.
pub fn corpus(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (src, tgt) = split_framed(data);
    let dir = scratch().join("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let (src_path, tgt_path) = (dir.join("src.txt"), dir.join("tgt.txt"));
    std::fs::write(&src_path, src).unwrap();
    std::fs::write(&tgt_path, tgt).unwrap();
    let (src_lines, tgt_lines) = match read_parallel(&src_path, &tgt_path) {
        Ok(lines) => lines,
        Err(e) => return assert!(!e.to_string().is_empty()),
    };
    assert_eq!(src_lines.len(), tgt_lines.len());
    let toy = toy_loaded();
    let max_len = 1 + (flags >> 2) as usize;
    let (examples, dropped) =
        encode_pairs(&src_lines, &tgt_lines, &toy.src_tok, &toy.tgt_tok, max_len).unwrap();
    assert_eq!(examples.len() + dropped, src_lines.len());
    let batches = token_batches(&examples, 1 + flags as usize * 4, None);
    let mut seen = vec![0u32; examples.len()];
    for i in batches.iter().flatten() {
        seen[*i] += 1;
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "a pair missing or repeated in the batches"
    );
    if flags & 1 == 1 {
        let tok = match SubwordTokenizer::train(src_lines.iter(), 300) {
            Ok(tok) => tok,
            Err(e) => return assert!(!e.to_string().is_empty()),
        };
        for line in &src_lines {
            if SPECIALS.iter().any(|(s, _)| line.contains(s)) {
                continue;
            }
            let ids = tok.encode(line).unwrap();
            assert_eq!(&tok.decode(&ids).unwrap(), line, "BPE did not round-trip");
        }
    }
}

/// The toy model, loaded once.
fn toy_loaded() -> &'static Loaded {
    static MODEL: OnceLock<Loaded> = OnceLock::new();
    MODEL.get_or_init(|| checkpoint::load(toy_model_dir(), &Device::Cpu).unwrap())
}

/// Checkpoint loading: `data` is `[framed config.json, model.safetensors]`, put in a folder
/// beside the toy model's tokenizers and loaded; a model that loads translates a sentence.
pub fn checkpoint(data: &[u8]) {
    let (config, weights) = split_framed(data);
    let dir = scratch().join("checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    for file in [
        checkpoint::SRC_TOKENIZER_FILE,
        checkpoint::TGT_TOKENIZER_FILE,
    ] {
        if !dir.join(file).exists() {
            std::fs::copy(toy_model_dir().join(file), dir.join(file)).unwrap();
        }
    }
    std::fs::write(dir.join(checkpoint::CONFIG_FILE), config).unwrap();
    std::fs::write(dir.join(checkpoint::WEIGHTS_FILE), weights).unwrap();
    let loaded = match checkpoint::load(&dir, &Device::Cpu) {
        Ok(loaded) => loaded,
        Err(e) => return assert!(!e.to_string().is_empty()),
    };
    let search = SearchConfig {
        beam: 2,
        max_len_ratio: 1.5,
        ..SearchConfig::default()
    };
    let translator = Translator::new(vec![("fuzzed".into(), loaded)], search).unwrap();
    let out = translator
        .translate_nbest(&["ein Hund".to_string()])
        .unwrap();
    assert_eq!(out.len(), 1);
}

/// The search settings `translate` reads from its first 6 bytes (beam 0 and n-best above
/// the beam included, so the refusals are fuzzed too).
pub fn search_settings(b: &[u8; 6]) -> SearchConfig {
    SearchConfig {
        beam: (b[0] % 7) as usize,
        n_best: 1 + (b[1] % 7) as usize,
        max_len_ratio: b[2] as f32 / 16.0,
        min_len: (b[3] % 4) as usize,
        length_penalty: [
            LengthPenalty::None,
            LengthPenalty::Average,
            LengthPenalty::Gnmt,
        ][(b[4] % 3) as usize],
        length_alpha: (b[4] / 3) as f32 / 32.0,
        batch_size: 1 + (b[5] % 4) as usize,
    }
}

/// Translation: `data` is `[6 bytes of search settings][text]`; the text (lossy UTF-8) is
/// split into lines and translated by the toy model.
///
/// Checked: one answer list per line; 1..=n-best answers, ranked best first; finite scores.
pub fn translate(data: &[u8]) {
    let Some((settings, text)) = data.split_first_chunk::<6>() else {
        return;
    };
    let search = search_settings(settings);
    if let Err(e) = search.validate() {
        return assert!(!e.to_string().is_empty());
    }
    let lines: Vec<String> = String::from_utf8_lossy(text)
        .lines()
        .map(str::to_string)
        .collect();
    thread_local! {
        static TRANSLATOR: std::cell::RefCell<Option<Translator>> = const { std::cell::RefCell::new(None) };
    }
    TRANSLATOR.with_borrow_mut(|slot| {
        let translator = slot.get_or_insert_with(|| {
            let loaded = checkpoint::load(toy_model_dir(), &Device::Cpu).unwrap();
            Translator::new(vec![("toy".into(), loaded)], SearchConfig::default()).unwrap()
        });
        translator.search = search.clone();
        let out = translator.translate_nbest(&lines).unwrap();
        assert_eq!(out.len(), lines.len());
        for (line, hyps) in lines.iter().zip(&out) {
            let n = if line.trim().is_empty() {
                1
            } else {
                search.n_best
            };
            assert!(
                !hyps.is_empty() && hyps.len() <= n,
                "{} answers for {line:?}",
                hyps.len()
            );
            assert!(
                hyps.windows(2).all(|w| w[0].score >= w[1].score),
                "not ranked"
            );
            assert!(
                hyps.iter().all(|h| h.score.is_finite()),
                "a score is not finite"
            );
        }
    });
}

/// Seed inputs for each target, written under `dir/<target>/`: the toy corpus (plain and
/// gzip), the toy model's own checkpoint, and sentences with common search settings.
pub fn write_seeds(dir: &Path) {
    use std::io::Write;
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    let head = |file: &str| -> Vec<u8> {
        let text = std::fs::read_to_string(toy(file)).unwrap();
        text.lines()
            .take(20)
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    };
    let (de, en) = (head("train.de"), head("train.en"));
    let mut plain = vec![0x21];
    plain.extend(framed(&de, &en));
    write("corpus", "toy-plain", &plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&de).unwrap();
    let mut zipped = vec![0x20];
    zipped.extend(framed(&gz.finish().unwrap(), &en));
    write("corpus", "toy-gzip", &zipped);
    let model = toy_model_dir();
    let read = |f: &str| std::fs::read(model.join(f)).unwrap();
    write(
        "checkpoint",
        "toy-model",
        &framed(
            &read(checkpoint::CONFIG_FILE),
            &read(checkpoint::WEIGHTS_FILE),
        ),
    );
    for (name, settings, text) in [
        (
            "beam5",
            [5u8, 0, 32, 0, 1, 3],
            "ein Hund läuft\nzwei Männer\n\n",
        ),
        ("greedy", [1, 0, 16, 0, 0, 0], "Ein Mann 🙂 שלום e\u{301}\n"),
        (
            "nbest",
            [4, 3, 48, 2, 2 + 3 * 32, 1],
            "eine Frau spielt Gitarre",
        ),
    ] {
        let mut bytes = settings.to_vec();
        bytes.extend_from_slice(text.as_bytes());
        write("translate", name, &bytes);
    }
}

/// Every input file under `dir/<target>/`, by target, for the regression test.
pub fn inputs(dir: &Path) -> HashMap<String, Vec<PathBuf>> {
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for target in ["corpus", "checkpoint", "translate"] {
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        out.insert(target.to_string(), files);
    }
    out
}

/// Runs the harness named `target` on `data`.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "corpus" => corpus(data),
        "checkpoint" => checkpoint(data),
        "translate" => translate(data),
        other => panic!("no fuzz target {other}"),
    }
}
