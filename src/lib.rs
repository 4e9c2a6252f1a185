//! lowp: low-precision training on any GPU, with a CPU reference that agrees bit for bit.

pub mod accum;
pub mod atomic_file;
pub mod conv;
pub mod data;
pub mod digest;
pub mod error;
pub mod format;
pub mod glm;
pub mod gpu;
pub mod layer_geometry;
pub mod levels;
pub mod methods;
pub mod ops;
pub mod optim;
pub mod quant;
pub mod reference;
pub mod rng;
pub mod scaled_fixed;
pub mod softfloat;
pub mod sweep;
pub mod train;

pub use error::Error;
pub use format::{Format, FormatError};
pub use quant::{Exceptions, QuantSpec, Rounding, Scaling};
