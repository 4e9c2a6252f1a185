//! Checkpoints: a trainer's whole state (packed weights, optimizer state, master copies,
//! loss scale, step) in a safetensors file that other tools can read: every tensor under
//! its own name with its shape, its codes in the safetensors dtype of its format where
//! there is one (F32, F16, BF16, F8_E4M3, F8_E5M2, I8/I16/I32 for fixed point) and as
//! unsigned codes otherwise, its format, role and a checksum in the metadata; written
//! atomically (a temporary file, flushed, then renamed over the old one).

use crate::format::{BlockScale, Format, packed_words};
use crate::reference::pack::{pack, unpack};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One stored tensor: its packed codes (and scales) exactly as the trainer holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTensor {
    /// Name, e.g. `fc1.weight` or `fc1.momentum.bias`.
    pub name: String,
    /// What it holds: `param`, `momentum`, `moment2`, `master` or `running`.
    pub role: String,
    /// The format the codes are in (its text form).
    pub format: String,
    /// Elements.
    pub len: usize,
    /// Its shape (`[out, in]` for a linear weight, `[out, in, k, k]` for a convolution's).
    pub shape: Vec<usize>,
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

/// The version of the file layout this lowp writes (1: flat u32 word arrays).
const VERSION: u32 = 2;
/// The suffix of a block tensor's block scales (an E8M0 or E4M3 byte a block).
const BLOCK_SCALES: &str = "block_scales";
/// The suffix of a per-tensor scaled tensor's power-of-two exponent.
const SCALE_EXP: &str = "scale_exp";
/// The suffix of an E4M3-scaled block tensor's fp32 tensor scale.
const TENSOR_SCALE: &str = "tensor_scale";

/// The safetensors dtype block scales are stored as.
fn scale_dtype(scale: BlockScale) -> Dtype {
    match scale {
        BlockScale::E8m0 => Dtype::F8_E8M0,
        BlockScale::E4m3 => Dtype::F8_E4M3,
    }
}

/// One tensor of a safetensors file: name, dtype, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    /// Its name in the file.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// How a format's codes are stored: the dtype, and whether the codes are signed
/// (two's complement, sign-extended to the dtype's width).
pub fn code_dtype(format: &Format) -> (Dtype, bool) {
    use crate::format::{FloatFormat, ScalarFormat};
    let el = format.element();
    let named = [
        (FloatFormat::FP32, Dtype::F32),
        (FloatFormat::FP16, Dtype::F16),
        (FloatFormat::BF16, Dtype::BF16),
        (FloatFormat::E4M3, Dtype::F8_E4M3),
        (FloatFormat::E5M2, Dtype::F8_E5M2),
    ];
    match el {
        ScalarFormat::Float(f) => {
            if let Some((_, d)) = named.iter().find(|(g, _)| *g == f) {
                return (*d, false);
            }
        }
        ScalarFormat::Fixed(x) => {
            let d = match x.wl {
                0..=8 => Dtype::I8,
                9..=16 => Dtype::I16,
                _ => Dtype::I32,
            };
            return (d, true);
        }
    }
    let d = match el.bits() {
        0..=8 => Dtype::U8,
        9..=16 => Dtype::U16,
        _ => Dtype::U32,
    };
    (d, false)
}

/// The bytes of `codes` (`bits` wide) in `dtype`, signed codes sign-extended.
fn code_bytes(codes: &[u32], bits: u32, dtype: Dtype, signed: bool) -> Vec<u8> {
    let size = dtype.bitsize() / 8;
    let shift = 32 - bits;
    let mut out = Vec::with_capacity(codes.len() * size);
    for &c in codes {
        let v = if signed {
            (((c << shift) as i32) >> shift) as u32
        } else {
            c
        };
        out.extend_from_slice(&v.to_le_bytes()[..size]);
    }
    out
}

/// Codes (`bits` wide) from bytes in `dtype`; `None` where a value does not fit the width.
fn codes_of(data: &[u8], bits: u32, dtype: Dtype, signed: bool) -> Option<Vec<u32>> {
    let size = dtype.bitsize() / 8;
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    };
    data.chunks_exact(size)
        .map(|b| {
            let mut w = [0u8; 4];
            w[..size].copy_from_slice(b);
            let raw = u32::from_le_bytes(w);
            if signed {
                let s = 32 - 8 * size as u32;
                let v = ((raw << s) as i32) >> s;
                let lim = 1i64 << (bits - 1);
                ((-lim..lim).contains(&(v as i64))).then_some(v as u32 & mask)
            } else {
                (raw & !mask == 0).then_some(raw)
            }
        })
        .collect()
}

/// The tensors a stored tensor is written as: its codes, then its scales if it has any.
pub fn blobs_of(t: &StoredTensor) -> Result<Vec<Blob>, String> {
    let format: Format = t.format.parse().map_err(|e| format!("{}: {e}", t.name))?;
    let bits = format.bits();
    let (dtype, signed) = code_dtype(&format);
    let codes = unpack(&t.words, bits, t.len);
    let mut v = vec![Blob {
        name: t.name.clone(),
        dtype,
        shape: t.shape.clone(),
        data: code_bytes(&codes, bits, dtype, signed),
    }];
    if let Some(b) = format.block() {
        let (dtype, header) = (scale_dtype(b.scale), b.scale_header());
        let blocks = b.blocks(t.len);
        if t.scales.len() != b.scale_words(t.len) {
            return Err(format!("{}: its block scales do not fit it", t.name));
        }
        if header == 1 {
            v.push(Blob {
                name: format!("{}.{TENSOR_SCALE}", t.name),
                dtype: Dtype::F32,
                shape: vec![1],
                data: t.scales[0].to_le_bytes().to_vec(),
            });
        }
        v.push(Blob {
            name: format!("{}.{BLOCK_SCALES}", t.name),
            dtype,
            shape: vec![blocks],
            data: unpack(&t.scales[header..], 8, blocks)
                .iter()
                .map(|&b| b as u8)
                .collect(),
        });
    } else if !t.scales.is_empty() {
        v.push(Blob {
            name: format!("{}.{SCALE_EXP}", t.name),
            dtype: Dtype::I32,
            shape: vec![t.scales.len()],
            data: t.scales.iter().flat_map(|w| w.to_le_bytes()).collect(),
        });
    }
    Ok(v)
}

/// A 64-bit FNV-1a digest of everything a checkpoint holds (step, step state, every
/// tensor by name with its role, shape, codes and scales, the run settings), independent
/// of the order and the dtypes they are stored in: a damaged file fails to match it.
fn checksum(state: &TrainState, meta: &BTreeMap<String, String>) -> u64 {
    let mut h = crate::digest::Fnv64::default();
    let mut eat = |bytes: &[u8]| h.eat(bytes);
    eat(format!("lowp checkpoint {VERSION}").as_bytes());
    eat(&state.step.to_le_bytes());
    state.loss_scale.iter().for_each(|w| eat(&w.to_le_bytes()));
    let mut tensors: Vec<&StoredTensor> = state.tensors.iter().collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    for t in tensors {
        for text in [&t.name, &t.role, &t.format] {
            eat(text.as_bytes());
            eat(&[0]);
        }
        eat(&(t.len as u64).to_le_bytes());
        eat(&(t.shape.len() as u64).to_le_bytes());
        t.shape.iter().for_each(|d| eat(&(*d as u64).to_le_bytes()));
        // The codes and scales themselves, not the padding of their last word.
        let format = t.format.parse::<Format>().ok();
        let bits = format.map_or(32, |f| f.bits());
        let scales = match format.and_then(|f| f.block()) {
            Some(b) => {
                let header = b.scale_header().min(t.scales.len());
                let mut v = t.scales[..header].to_vec();
                let rest = &t.scales[header..];
                v.extend(unpack(rest, 8, b.blocks(t.len).min(4 * rest.len())));
                v
            }
            None => t.scales.clone(),
        };
        let n = t.len.min(t.words.len() * 32 / bits as usize);
        for part in [unpack(&t.words, bits, n), scales] {
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

/// A safetensors file of `blobs` and `info`: an 8-byte little-endian header length, the
/// JSON header with keys in sorted order (so equal states give equal files), padded with
/// spaces to 8 bytes, then the tensors' bytes in name order.
pub fn safetensors_bytes(blobs: &[Blob], info: &BTreeMap<String, String>) -> Vec<u8> {
    let mut order: Vec<&Blob> = blobs.iter().collect();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(info));
    let mut offset = 0usize;
    for b in &order {
        header.insert(
            b.name.clone(),
            serde_json::json!({
                "dtype": b.dtype.to_string(),
                "shape": b.shape,
                "data_offsets": [offset, offset + b.data.len()],
            }),
        );
        offset += b.data.len();
    }
    let mut text = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for b in order {
        out.extend_from_slice(&b.data);
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
    let mut info: BTreeMap<String, String> = meta
        .iter()
        .map(|(k, v)| (format!("run.{k}"), v.clone()))
        .collect();
    info.insert("lowp.version".into(), VERSION.to_string());
    info.insert("lowp.step".into(), state.step.to_string());
    info.insert(
        "lowp.checksum".into(),
        format!("{:016x}", checksum(state, meta)),
    );
    info.insert(
        "lowp.loss_scale".into(),
        serde_json::to_string(&state.loss_scale).unwrap(),
    );
    let mut blobs = Vec::new();
    for t in &state.tensors {
        info.insert(format!("format.{}", t.name), t.format.clone());
        info.insert(format!("role.{}", t.name), t.role.clone());
        blobs.extend(blobs_of(t).map_err(|why| CheckpointError::Format {
            path: path.to_path_buf(),
            why,
        })?);
    }
    let bytes = safetensors_bytes(&blobs, &info);
    crate::atomic_file::write_atomic(path, &bytes).map_err(io)
}

/// The checkpoint `path` names: the file itself, or a run folder's checkpoint.safetensors.
pub fn file_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("checkpoint.safetensors")
    } else {
        path.to_path_buf()
    }
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
    let damaged = |why: String| bad(format!("{why}: the file is damaged"));
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let info = header
        .metadata()
        .clone()
        .ok_or_else(|| bad("no metadata".into()))?;
    let get = |k: &str| info.get(k).ok_or_else(|| bad(format!("no {k:?} entry")));
    match info.get("lowp.version").map(String::as_str) {
        Some(v) if v == VERSION.to_string() => {}
        Some(v) => {
            return Err(bad(format!(
                "file layout version {v}; this lowp reads {VERSION}"
            )));
        }
        None => {
            return Err(bad(format!(
                "an older layout (flat u32 words, version 1) that this lowp ({}) no longer reads; \
                 finish the run with the lowp that started it",
                env!("CARGO_PKG_VERSION")
            )));
        }
    }
    let step = get("lowp.step")?
        .parse::<u64>()
        .map_err(|e| bad(format!("lowp.step: {e}")))?;
    let loss_scale: [u32; crate::ops::optim::STEP_STATE_WORDS] =
        serde_json::from_str(get("lowp.loss_scale")?)
            .map_err(|e| bad(format!("lowp.loss_scale: {e}")))?;
    let mut names: Vec<String> = info
        .keys()
        .filter_map(|k| k.strip_prefix("format.").map(String::from))
        .collect();
    names.sort();
    let mut tensors = Vec::new();
    for name in &names {
        let text = &info[&format!("format.{name}")];
        let format: Format = text.parse().map_err(|e| bad(format!("{name}: {e}")))?;
        let view = st
            .tensor(name)
            .map_err(|_| bad(format!("no codes for {name}")))?;
        let (dtype, signed) = code_dtype(&format);
        if view.dtype() != dtype {
            return Err(damaged(format!(
                "{name} is {} where {text} is stored as {dtype}",
                view.dtype()
            )));
        }
        let bits = format.bits();
        let codes = codes_of(view.data(), bits, dtype, signed).ok_or_else(|| {
            damaged(format!(
                "{name} holds a code wider than {text}'s {bits} bits"
            ))
        })?;
        let len = codes.len();
        let scales = if let Some(b) = format.block() {
            let s = st
                .tensor(&format!("{name}.{BLOCK_SCALES}"))
                .map_err(|_| bad(format!("no block scales for {name}")))?;
            if s.dtype() != scale_dtype(b.scale) || s.data().len() != b.blocks(len) {
                return Err(damaged(format!("{name}'s block scales do not fit it")));
            }
            let mut words = Vec::new();
            if b.scale == BlockScale::E4m3 {
                let ts = st
                    .tensor(&format!("{name}.{TENSOR_SCALE}"))
                    .map_err(|_| bad(format!("no tensor scale for {name}")))?;
                match ts.data() {
                    [a, b, c, d] if ts.dtype() == Dtype::F32 => {
                        words.push(u32::from_le_bytes([*a, *b, *c, *d]))
                    }
                    _ => return Err(damaged(format!("{name}'s tensor scale is not one F32"))),
                }
            }
            words.extend(pack(
                &s.data().iter().map(|&b| b as u32).collect::<Vec<_>>(),
                8,
            ));
            words
        } else {
            match st.tensor(&format!("{name}.{SCALE_EXP}")) {
                Ok(s) if s.dtype() == Dtype::I32 => s
                    .data()
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Ok(_) => return Err(damaged(format!("{name}'s scale is not I32"))),
                Err(_) => Vec::new(),
            }
        };
        let words = pack(&codes, bits);
        debug_assert_eq!(words.len(), packed_words(len, bits));
        tensors.push(StoredTensor {
            name: name.to_string(),
            role: get(&format!("role.{name}"))?.clone(),
            format: text.clone(),
            len,
            shape: view.shape().to_vec(),
            words,
            scales,
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
        return Err(damaged(format!(
            "its checksum is {saved} but its contents give {computed}"
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
