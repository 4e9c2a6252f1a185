//! MNIST and Fashion-MNIST in the IDX format, gzipped or not.

use super::DataError;
use std::io::Read;
use std::path::Path;

/// Reads a file, inflating it if it starts with the gzip magic bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format(path.to_path_buf(), format!("bad gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(path: &Path, bytes: &[u8], magic: u32, dims: usize) -> Result<Vec<usize>, DataError> {
    let bad = |why: String| DataError::Format(path.to_path_buf(), why);
    if bytes.len() < 4 + 4 * dims {
        return Err(bad("shorter than an IDX header".into()));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if word(0) != magic {
        return Err(bad(format!(
            "IDX magic {:#010x}, expected {magic:#010x}",
            word(0)
        )));
    }
    let shape: Vec<usize> = (0..dims).map(|d| word(4 + 4 * d) as usize).collect();
    // Dimensions from a damaged header can multiply past usize: no such file exists.
    let want = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_add(4 + 4 * dims))
        .ok_or_else(|| {
            bad(format!(
                "the header's dimensions {shape:?} are impossibly large"
            ))
        })?;
    if bytes.len() != want {
        return Err(bad(format!(
            "{} bytes, the header {shape:?} says {want}",
            bytes.len()
        )));
    }
    Ok(shape)
}

/// Reads an IDX image file (magic 0x00000803): pixels and (count, rows, cols).
pub fn read_images(path: &Path) -> Result<(Vec<u8>, [usize; 3]), DataError> {
    let bytes = read_maybe_gz(path)?;
    let s = header(path, &bytes, 0x0000_0803, 3)?;
    Ok((bytes[16..].to_vec(), [s[0], s[1], s[2]]))
}

/// Reads an IDX label file (magic 0x00000801).
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path)?;
    header(path, &bytes, 0x0000_0801, 1)?;
    Ok(bytes[8..].to_vec())
}
