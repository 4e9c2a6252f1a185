//! GPU operations on packed tensors.

pub mod batchnorm;
pub mod conv;
pub mod conv_taps;
pub mod elementwise;
pub mod gemm;
pub mod halp;
pub mod linear;
pub mod optim;
pub mod packed_io;
pub mod quantize;

pub use conv::{conv2d_backward_data, conv2d_backward_weight, conv2d_forward};
pub use gemm::gemm;
pub use quantize::{amax, convert, dequantize, fake_quantize, quantize, quantize_buffer};
