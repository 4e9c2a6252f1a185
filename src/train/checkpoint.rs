//! Checkpoints: a trainer's whole state (packed weights, optimizer state, master copies,
//! loss scale, step) in a safetensors file, each tensor's format recorded beside it,
//! written atomically (a temporary file, flushed, then renamed over the old one).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One stored tensor: its packed codes (and scales) exactly as the trainer holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTensor {
    /// Name, e.g. `fc1.weight` or `fc1.momentum.bias`.
    pub name: String,
    /// The format the codes are in (its text form).
    pub format: String,
    /// Elements.
    pub len: usize,
    /// Packed codes.
    pub words: Vec<u32>,
    /// MX block scales (four E8M0 bytes to a word) or one per-tensor exponent; may be empty.
    pub scales: Vec<u32>,
}

/// Everything a trainer needs to continue exactly where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainState {
    /// Steps taken.
    pub step: u64,
    /// Loss-scale state words: [scale, skip, 1 / scale, good steps].
    pub loss_scale: [u32; crate::ops::optim::STEP_STATE_WORDS],
    /// Parameters and optimizer state.
    pub tensors: Vec<StoredTensor>,
}

/// What can go wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a lowp checkpoint.
    #[error("{path}: not a lowp checkpoint: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The checkpoint does not fit the trainer it is restored into.
    #[error("the checkpoint does not match this run: {0}")]
    Mismatch(String),
}

const WORDS: &str = "words";
const SCALES: &str = "scales";

fn bytes_of(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A 64-bit FNV-1a digest of everything a checkpoint holds (step, step state, every
/// tensor by name, the run settings), independent of the order they are stored in: a
/// damaged file fails to match it.
fn checksum(state: &TrainState, meta: &BTreeMap<String, String>) -> u64 {
    let mut h = crate::digest::Fnv64::default();
    let mut eat = |bytes: &[u8]| h.eat(bytes);
    eat(b"lowp checkpoint 1");
    eat(&state.step.to_le_bytes());
    state.loss_scale.iter().for_each(|w| eat(&w.to_le_bytes()));
    let mut tensors: Vec<&StoredTensor> = state.tensors.iter().collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    for t in tensors {
        for text in [&t.name, &t.format] {
            eat(text.as_bytes());
            eat(&[0]);
        }
        eat(&(t.len as u64).to_le_bytes());
        for part in [&t.words, &t.scales] {
            eat(&(part.len() as u64).to_le_bytes());
            part.iter().for_each(|w| eat(&w.to_le_bytes()));
        }
    }
    for (k, v) in meta {
        for text in [k, v] {
            eat(text.as_bytes());
            eat(&[0]);
        }
    }
    h.finish()
}

/// The safetensors file of u32 tensors `blobs` (name, bytes, words) and `info`: an 8-byte
/// little-endian header length, the JSON header with keys in sorted order (so equal states
/// give equal files), padded with spaces to 8 bytes, then the tensors' bytes in name order.
fn safetensors_bytes(
    blobs: &[(String, Vec<u8>, usize)],
    info: &HashMap<String, String>,
) -> Vec<u8> {
    let mut order: Vec<&(String, Vec<u8>, usize)> = blobs.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    let sorted: BTreeMap<&String, &String> = info.iter().collect();
    header.insert("__metadata__".into(), serde_json::json!(sorted));
    let mut offset = 0usize;
    for (name, data, words) in &order {
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": "U32",
                "shape": [words],
                "data_offsets": [offset, offset + data.len()],
            }),
        );
        offset += data.len();
    }
    let mut text = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for (_, data, _) in order {
        out.extend_from_slice(data);
    }
    out
}

/// Writes `state` and `meta` (run settings, free text) to `path` atomically.
pub fn save(
    path: &Path,
    state: &TrainState,
    meta: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut info: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (format!("run.{k}"), v.clone()))
        .collect();
    info.insert("lowp.step".into(), state.step.to_string());
    info.insert(
        "lowp.checksum".into(),
        format!("{:016x}", checksum(state, meta)),
    );
    info.insert(
        "lowp.loss_scale".into(),
        serde_json::to_string(&state.loss_scale).unwrap(),
    );
    let mut blobs: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for t in &state.tensors {
        info.insert(format!("format.{}", t.name), t.format.clone());
        info.insert(format!("len.{}", t.name), t.len.to_string());
        blobs.push((
            format!("{}/{WORDS}", t.name),
            bytes_of(&t.words),
            t.words.len(),
        ));
        if !t.scales.is_empty() {
            blobs.push((
                format!("{}/{SCALES}", t.name),
                bytes_of(&t.scales),
                t.scales.len(),
            ));
        }
    }
    let bytes = safetensors_bytes(&blobs, &info);
    crate::atomic_file::write_atomic(path, &bytes).map_err(io)
}

/// Reads a checkpoint: its state and the run settings it was saved with.
pub fn load(path: &Path) -> Result<(TrainState, BTreeMap<String, String>), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |why: String| CheckpointError::Format {
        path: path.to_path_buf(),
        why,
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let info = header
        .metadata()
        .clone()
        .ok_or_else(|| bad("no metadata".into()))?;
    let get = |k: &str| info.get(k).ok_or_else(|| bad(format!("no {k:?} entry")));
    let step = get("lowp.step")?
        .parse::<u64>()
        .map_err(|e| bad(format!("lowp.step: {e}")))?;
    let loss_scale: [u32; crate::ops::optim::STEP_STATE_WORDS] =
        serde_json::from_str(get("lowp.loss_scale")?).map_err(|e| {
            bad(format!(
                "lowp.loss_scale: {e} (a checkpoint from before the step state counted \
                 Adam's updates cannot be resumed)"
            ))
        })?;
    let words_of = |name: &str| -> Result<Option<Vec<u32>>, CheckpointError> {
        match st.tensor(name) {
            Ok(v) if v.dtype() == safetensors::Dtype::U32 => Ok(Some(
                v.data()
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )),
            Ok(_) => Err(bad(format!("{name} is not u32"))),
            Err(_) => Ok(None),
        }
    };
    let mut names: Vec<String> = info
        .keys()
        .filter_map(|k| k.strip_prefix("format.").map(String::from))
        .collect();
    names.sort();
    let mut tensors = Vec::new();
    for name in &names {
        let len = get(&format!("len.{name}"))?
            .parse::<usize>()
            .map_err(|e| bad(format!("len.{name}: {e}")))?;
        tensors.push(StoredTensor {
            name: name.to_string(),
            format: info[&format!("format.{name}")].clone(),
            len,
            words: words_of(&format!("{name}/{WORDS}"))?
                .ok_or_else(|| bad(format!("no codes for {name}")))?,
            scales: words_of(&format!("{name}/{SCALES}"))?.unwrap_or_default(),
        });
    }
    let meta = info
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("run.").map(|k| (k.to_string(), v.clone())))
        .collect();
    let state = TrainState {
        step,
        loss_scale,
        tensors,
    };
    let (saved, computed) = (
        get("lowp.checksum")?,
        format!("{:016x}", checksum(&state, &meta)),
    );
    if *saved != computed {
        return Err(bad(format!(
            "its checksum is {saved} but its contents give {computed}: the file is damaged"
        )));
    }
    Ok((state, meta))
}

impl TrainState {
    /// The stored tensor called `name`, checked against the format and length the run expects.
    pub fn expect(
        &self,
        name: &str,
        format: &str,
        len: usize,
    ) -> Result<&StoredTensor, CheckpointError> {
        let t = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| CheckpointError::Mismatch(format!("it has no tensor {name}")))?;
        if t.format != format || t.len != len {
            return Err(CheckpointError::Mismatch(format!(
                "{name} is {} x {} there, but this run has {format} x {len}",
                t.format, t.len
            )));
        }
        Ok(t)
    }
}
