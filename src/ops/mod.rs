//! GPU operations on packed tensors.

pub mod gemm;
pub mod quantize;

pub use gemm::gemm;
pub use quantize::{amax, convert, dequantize, fake_quantize, quantize, quantize_buffer};
