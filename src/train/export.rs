//! A checkpoint's model for other tools: its parameters (and batch-norm running
//! statistics) as f32 values or in the dtypes they are stored in, without optimizer state.

use super::checkpoint::{Blob, StoredTensor, TrainState, blobs_of};
use crate::format::Format;
use crate::reference::pack::unpack;
use crate::reference::quantize::decode_stored;
use safetensors::Dtype;
use std::collections::BTreeMap;

/// How parameters are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportAs {
    /// Decoded to f32 (scales applied).
    Fp32,
    /// Their codes as the checkpoint stores them, with their scales and formats.
    Stored,
}

/// A stored tensor's values in f32 (codes decoded, block or per-tensor scales applied).
pub fn values(t: &StoredTensor) -> Result<Vec<f32>, String> {
    let format: Format = t.format.parse().map_err(|e| format!("{}: {e}", t.name))?;
    let codes = unpack(&t.words, format.bits(), t.len);
    let scale_exp = t.scales.first().map_or(0, |&w| w as i32);
    Ok(codes
        .iter()
        .enumerate()
        .map(|(i, &c)| f32::from_bits(decode_stored(&format, &t.scales, scale_exp, i, c)))
        .collect())
}

fn f32_blob(name: String, shape: Vec<usize>, v: &[f32]) -> Blob {
    Blob {
        name,
        dtype: Dtype::F32,
        shape,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// The tensors and metadata of the export of `state`: every parameter under its name
/// (`L.weight`, `L.bias`) and each batch-norm layer's `L.running_mean` and `L.running_var`.
pub fn export(
    state: &TrainState,
    meta: &BTreeMap<String, String>,
    how: ExportAs,
) -> Result<(Vec<Blob>, BTreeMap<String, String>), String> {
    let mut info: BTreeMap<String, String> = meta
        .iter()
        .filter(|(k, _)| !k.starts_with("epoch_"))
        .map(|(k, v)| (format!("run.{k}"), v.clone()))
        .collect();
    info.insert("lowp.step".into(), state.step.to_string());
    info.insert(
        "lowp.export".into(),
        match how {
            ExportAs::Fp32 => "fp32",
            ExportAs::Stored => "stored",
        }
        .into(),
    );
    let mut blobs = Vec::new();
    for t in &state.tensors {
        match t.role.as_str() {
            "param" => {
                info.insert(format!("format.{}", t.name), t.format.clone());
                match how {
                    ExportAs::Fp32 => {
                        blobs.push(f32_blob(t.name.clone(), t.shape.clone(), &values(t)?))
                    }
                    ExportAs::Stored => blobs.extend(blobs_of(t)?),
                }
            }
            "running" => {
                let v = values(t)?;
                let layer = t.name.strip_suffix(".running").unwrap_or(&t.name);
                let c = v.len() / 2;
                for (i, what) in ["running_mean", "running_var"].iter().enumerate() {
                    blobs.push(f32_blob(
                        format!("{layer}.{what}"),
                        vec![c],
                        &v[i * c..(i + 1) * c],
                    ));
                }
            }
            _ => {}
        }
    }
    Ok((blobs, info))
}
