//! CIFAR-10 in its binary layout: records of one label byte and 3 x 32 x 32 pixel bytes.

use super::DataError;
use std::path::Path;

/// Bytes in one record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Reads one CIFAR-10 binary batch: pixels (N x 3 x 32 x 32) and labels.
pub fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Io(path.to_path_buf(), e))?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(DataError::Format(
            path.to_path_buf(),
            format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                bytes.len()
            ),
        ));
    }
    let mut pixels = Vec::with_capacity(bytes.len() / RECORD * (RECORD - 1));
    let mut labels = Vec::with_capacity(bytes.len() / RECORD);
    for rec in bytes.chunks(RECORD) {
        if rec[0] > 9 {
            return Err(DataError::Format(
                path.to_path_buf(),
                format!("label {} is not a CIFAR-10 class (0..=9)", rec[0]),
            ));
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((pixels, labels))
}
