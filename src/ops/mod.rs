//! GPU operations on packed tensors.

pub mod quantize;

pub use quantize::{amax, convert, dequantize, fake_quantize, quantize, quantize_buffer};
