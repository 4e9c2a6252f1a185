//! ns a value of the host's rounding of a training batch's input (64 x 784 values with 256
//! distinct pixel levels, as MNIST's), by the reference quantizer and by
//! `quantize_repeating` (each distinct value rounded once), for the formats the fp32 and
//! HFP8 maps and bf16 give an input.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lowp::quant::QuantSpec;
use lowp::reference::quantize::{quantize, quantize_repeating};

fn bench(c: &mut Criterion) {
    let n = 64 * 784;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 256) as f32 / 255.0 - 0.1307) / 0.3081)
        .collect();
    for fmt in ["fp32", "e4m3", "bf16"] {
        let spec = QuantSpec::new(fmt.parse().unwrap());
        let mut g = c.benchmark_group(format!("host input rounding {fmt}"));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("reference", |b| b.iter(|| quantize(&x, &spec)));
        g.bench_function("repeating", |b| b.iter(|| quantize_repeating(&x, &spec)));
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
