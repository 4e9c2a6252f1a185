//! The GPU opens and one quantize agrees with the reference.
mod common;

use lowp::quant::QuantSpec;

#[test]
fn e4m3_quantize_matches_reference() {
    let ctx = common::gpu();
    eprintln!("{}", ctx.report());
    let spec = QuantSpec::new("e4m3".parse().unwrap());
    let x = common::tricky_inputs(1000, 1, 448.0);
    let (t, exc) = lowp::ops::quantize(&ctx, &x, &[1000], &spec).unwrap();
    let r = lowp::reference::quantize(&x, &spec);
    assert_eq!(t.read_words(&ctx).unwrap(), r.words);
    assert_eq!(exc, r.exceptions);
    let y = lowp::ops::dequantize(&ctx, &t).unwrap();
    let yr = lowp::reference::dequantize(&r);
    assert_eq!(
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        yr.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
