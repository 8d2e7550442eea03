//! Run folders: model.safetensors + config.json + the two tokenizers. Saves are atomic
//! (temporary file in the same folder, fsync, rename), so a run killed mid-save leaves the
//! previous checkpoint loadable. Loading checks every tensor against config.json.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::atomic_file::{write_atomic, write_text_atomic};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::{params, Seq2Seq};
use crate::tokenizer::SubwordTokenizer;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const SRC_TOKENIZER_FILE: &str = "src_tokenizer.json";
pub const TGT_TOKENIZER_FILE: &str = "tgt_tokenizer.json";

/// A model ready to translate, with its tokenizers.
pub struct Loaded {
    pub model: Seq2Seq,
    pub src_tok: SubwordTokenizer,
    pub tgt_tok: SubwordTokenizer,
}

/// Saves the weights and config.json into `dir`.
pub fn save_model(dir: &Path, model: &Seq2Seq) -> Result<()> {
    let json =
        serde_json::to_string_pretty(&model.cfg).map_err(|e| Error::Config(e.to_string()))?;
    let tensors: HashMap<String, Tensor> = model
        .named_tensors()
        .into_iter()
        .map(|(k, t)| (k, t.detach()))
        .collect();
    // The config travels inside the weights file too, so the file describes itself.
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "nmt_format_version".to_string(),
            model.cfg.format_version.to_string(),
        ),
        (
            "nmt_config".to_string(),
            serde_json::to_string(&model.cfg).map_err(|e| Error::Config(e.to_string()))?,
        ),
    ]);
    write_atomic(&dir.join(WEIGHTS_FILE), |tmp| {
        write_safetensors(tmp, &tensors, &metadata)
    })?;
    write_text_atomic(&dir.join(CONFIG_FILE), &(json + "\n"))
}

/// Writes f32 `tensors` as a safetensors file with `metadata`, names and metadata keys in
/// sorted order, so equal weights always give equal bytes (the safetensors crate orders the
/// metadata by a randomly seeded hash map).
pub fn write_safetensors(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let sorted: BTreeMap<&String, &Tensor> = tensors.iter().collect();
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).map_err(|e| Error::Config(e.to_string()))?,
    );
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in &sorted {
        let values = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": t.dims(), "data_offsets": [start, data.len()]}),
        );
    }
    let mut head = serde_json::Value::Object(header).to_string().into_bytes();
    // The data must start 8-byte aligned; the format pads the header with spaces.
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut f = std::fs::File::create(path).map_err(|e| Error::write(path, e))?;
    f.write_all(&(head.len() as u64).to_le_bytes())
        .and_then(|()| f.write_all(&head))
        .and_then(|()| f.write_all(&data))
        .map_err(|e| Error::write(path, e))
}

/// Saves both tokenizers into `dir`.
pub fn save_tokenizers(dir: &Path, src: &SubwordTokenizer, tgt: &SubwordTokenizer) -> Result<()> {
    for (file, tok) in [(SRC_TOKENIZER_FILE, src), (TGT_TOKENIZER_FILE, tgt)] {
        write_atomic(&dir.join(file), |tmp| tok.save(tmp))?;
    }
    Ok(())
}

/// Reads and validates DIR/config.json.
pub fn load_config(dir: &Path) -> Result<ModelConfig> {
    if !dir.is_dir() {
        return Err(Error::checkpoint(
            dir,
            "no such model folder: give the folder `nmt train --out` wrote",
        ));
    }
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::checkpoint(
            &path,
            format!("cannot read it ({e}): a model folder needs config.json, model.safetensors and the tokenizers that `nmt train` writes"),
        )
    })?;
    let cfg: ModelConfig = serde_json::from_str(&text)
        .map_err(|e| Error::checkpoint(&path, format!("is not a valid nmt config: {e}")))?;
    cfg.validate()
        .map_err(|e| Error::checkpoint(&path, e.to_string()))?;
    Ok(cfg)
}

fn must_exist(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::checkpoint(
            &path,
            "is missing: the model folder is incomplete; train again or copy the whole folder",
        ))
    }
}

/// The `__metadata__` of a safetensors file, read from its header alone.
pub fn weights_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let bad = |msg: &str| Error::checkpoint(path, format!("cannot read the weights: {msg}"));
    let mut f = std::fs::File::open(path).map_err(|e| bad(&e.to_string()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad("the file is too short for a safetensors header"))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(bad(
            "the header size is implausible; this is not a safetensors file",
        ));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header)
        .map_err(|_| bad("the header is cut short"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| bad("the header is not JSON"))?;
    Ok(v["__metadata__"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

/// Loads the model in `dir` onto `device`, checking every tensor's presence and shape.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    let cfg = load_config(dir)?;
    let weights = must_exist(dir.join(WEIGHTS_FILE))?;
    if let Some(v) = weights_metadata(&weights)?.get("nmt_format_version") {
        if v.parse::<u32>().ok() != Some(crate::config::FORMAT_VERSION) {
            return Err(Error::checkpoint(
                &weights,
                format!("was written in nmt format version {v}; this nmt reads version {}: use the nmt release that wrote it", crate::config::FORMAT_VERSION),
            ));
        }
    }
    let tensors = candle_core::safetensors::load(&weights, device)
        .map_err(|e| Error::checkpoint(&weights, format!("cannot read the weights: {e}")))?;
    params::check(&cfg, &tensors).map_err(|m| Error::checkpoint(&weights, m))?;
    params::check_finite(&tensors).map_err(|m| Error::checkpoint(&weights, m))?;
    let model = Seq2Seq::from_tensors(&cfg, &tensors)?;
    let src_tok = SubwordTokenizer::from_file(&must_exist(dir.join(SRC_TOKENIZER_FILE))?)?;
    let tgt_tok = SubwordTokenizer::from_file(&must_exist(dir.join(TGT_TOKENIZER_FILE))?)?;
    for (side, tok, want) in [
        ("source", &src_tok, cfg.src_vocab),
        ("target", &tgt_tok, cfg.tgt_vocab),
    ] {
        if tok.vocab_size() != want {
            return Err(Error::checkpoint(
                dir,
                format!(
                    "the {side} tokenizer has {} entries but config.json says {want}",
                    tok.vocab_size()
                ),
            ));
        }
    }
    Ok(Loaded {
        model,
        src_tok,
        tgt_tok,
    })
}
