//! Reading f32 .npy arrays; writing f32 arrays and arrays of packed formats' codes.

use npyz::WriterBuilder;
use std::path::{Path, PathBuf};

/// An f32 array with its shape and memory order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The values, in file order.
    pub data: Vec<f32>,
}

/// Why an .npy file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The array does not hold 32-bit floats.
    #[error(
        "{path}: holds {found} values, but lowp reads float32 arrays (convert with arr.astype(np.float32))"
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The dtype it holds.
        found: String,
    },
    /// Not a valid .npy file.
    #[error("{path}: not a valid .npy file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads an f32 .npy file.
pub fn read_f32(path: &Path) -> Result<NpyArray, NpyError> {
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| NpyError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let fortran_order = npy.order() == npyz::Order::Fortran;
    let found = npy.dtype().descr();
    let reader = npy.data::<f32>().map_err(|_| NpyError::Dtype {
        path: path.to_path_buf(),
        found,
    })?;
    let data = reader
        .collect::<Result<Vec<f32>, _>>()
        .map_err(|e| NpyError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(NpyArray {
        shape,
        fortran_order,
        data,
    })
}

/// Writes an f32 .npy file atomically (a temporary file renamed into place).
pub fn write_f32(path: &Path, a: &NpyArray) -> Result<(), NpyError> {
    write(path, &a.shape, a.fortran_order, a.data.iter().copied())
}

/// Writes `bits`-wide codes as an unsigned .npy array (uint8 up to 8 bits, uint16 up to
/// 16, else uint32) of `shape`, atomically.
pub fn write_codes(
    path: &Path,
    shape: &[usize],
    fortran_order: bool,
    codes: &[u32],
    bits: u32,
) -> Result<(), NpyError> {
    let it = codes.iter().copied();
    match bits {
        0..=8 => write(path, shape, fortran_order, it.map(|c| c as u8)),
        9..=16 => write(path, shape, fortran_order, it.map(|c| c as u16)),
        _ => write(path, shape, fortran_order, it),
    }
}

/// Writes an int32 .npy array of `shape`, atomically.
pub fn write_i32(path: &Path, shape: &[usize], data: &[i32]) -> Result<(), NpyError> {
    write(path, shape, false, data.iter().copied())
}

/// Writes an .npy array of `T` atomically.
fn write<T: npyz::AutoSerialize>(
    path: &Path,
    shape: &[usize],
    fortran_order: bool,
    data: impl Iterator<Item = T>,
) -> Result<(), NpyError> {
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let order = if fortran_order {
        npyz::Order::Fortran
    } else {
        npyz::Order::C
    };
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .order(order)
        .writer(&mut buf)
        .begin_nd()
        .map_err(io)?;
    w.extend(data).map_err(io)?;
    w.finish().map_err(io)?;
    crate::atomic_file::write_atomic(path, &buf).map_err(io)
}
