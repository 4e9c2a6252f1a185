//! The library API: quantize a tensor on the GPU, read it back, and check it against the
//! CPU reference.
//!
//! cargo run --release --example quantize_api

use lowp::quant::{QuantSpec, Rounding};
use lowp::{gpu::GpuContext, ops, reference};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = GpuContext::new()?;
    println!("{}\n", ctx.report());
    let x: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.01).sin() * 3.0).collect();
    for (fmt, rounding) in [
        ("e4m3", Rounding::Nearest),
        ("e2m1", Rounding::Stochastic { bits: 16 }),
        ("mxfp4_e2m1", Rounding::Nearest),
        ("fixed(wl=8,fl=5)", Rounding::Stochastic { bits: 8 }),
    ] {
        let spec = QuantSpec {
            rounding,
            seed: 42,
            ..QuantSpec::new(fmt.parse()?)
        };
        let (t, exc) = ops::quantize(&ctx, &x, &[64, 64], &spec)?;
        let y = ops::dequantize(&ctx, &t)?;
        let cpu = reference::dequantize(&reference::quantize(&x, &spec));
        let same = y.iter().zip(&cpu).all(|(a, b)| a.to_bits() == b.to_bits());
        let mse = x
            .iter()
            .zip(&y)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / x.len() as f64;
        println!(
            "{fmt:<18} {rounding:<12} stored {:>6} bytes (fp32 {}), mse {mse:.3e}, overflow {}, underflow {}, gpu == cpu: {same}",
            t.stored_bytes(),
            4 * x.len(),
            exc.overflow,
            exc.underflow
        );
    }
    Ok(())
}
