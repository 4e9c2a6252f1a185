//! The library's one error type: every module's error converts into it, so a caller (the
//! command line, a research method driving training) handles one type.

use std::path::PathBuf;

/// Anything that can go wrong in lowp.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The GPU: no adapter, a refused device, a kernel or buffer failure, a bad request.
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    /// A GEMM or convolution that does not fit its operands.
    #[error(transparent)]
    Gemm(#[from] crate::accum::GemmError),
    /// An accumulator description.
    #[error(transparent)]
    Accumulator(#[from] crate::accum::AccumulatorError),
    /// A number format description.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// A rounding description.
    #[error(transparent)]
    Rounding(#[from] crate::quant::RoundingError),
    /// A data set.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A precision map or a training setting.
    #[error(transparent)]
    Precision(#[from] crate::train::precision::PrecisionError),
    /// A model description.
    #[error(transparent)]
    ModelFile(#[from] crate::train::model_file::ModelFileError),
    /// A checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] crate::train::checkpoint::CheckpointError),
    /// A level set (ZipML quantization levels).
    #[error(transparent)]
    Levels(#[from] crate::levels::LevelsError),
    /// A linear model's training.
    #[error(transparent)]
    Linear(#[from] crate::methods::linear::LinearError),
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Training diverged: what happened and where the last good checkpoint is.
    #[error("{0}")]
    Diverged(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A result with lowp's error.
pub type Result<T> = std::result::Result<T, Error>;
