//! CPU reference emulator: the oracle every GPU kernel is tested against.

pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod halp;
pub mod linear;
pub mod optim;
pub mod pack;
pub mod quantize;

pub use pack::{pack, packed_words, unpack};
pub use quantize::{Quantized, dequantize, fake_quantize, quantize};
