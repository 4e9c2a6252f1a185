//! NVFP4 and general block formats: the text forms, and the CPU reference's codes, scales
//! and values against an independent implementation of the recipe in native f32
//! arithmetic (the host's IEEE division and multiplication, subnormals kept) with the E4M3
//! and E2M1 grids enumerated from their definitions.

use lowp::format::{BlockFormat, BlockScale, Format};
use lowp::quant::{QuantSpec, Rounding};
use lowp::reference::{dequantize, pack::unpack, quantize};

/// Every E4M3 byte's value (0x00..=0x7e; 0x7f is NaN), from the format's definition.
fn e4m3_grid() -> Vec<f64> {
    (0u32..0x7f)
        .map(|b| {
            let (e, m) = ((b >> 3) as i32, (b & 7) as f64);
            if e == 0 {
                m / 8.0 * 2f64.powi(-6)
            } else {
                (1.0 + m / 8.0) * 2f64.powi(e - 7)
            }
        })
        .collect()
}

/// E2M1's magnitudes by code.
const E2M1: [f64; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

/// The code of the grid value nearest to |v| (ties to the even code), saturating at the top.
fn nearest(grid: &[f64], v: f64) -> u32 {
    let v = v.abs();
    let top = grid.len() - 1;
    if v >= grid[top] {
        return top as u32;
    }
    let hi = grid.iter().position(|&g| g >= v).unwrap();
    if grid[hi] == v || hi == 0 {
        return hi as u32;
    }
    let (dl, dh) = (v - grid[hi - 1], grid[hi] - v);
    if dl < dh || (dl == dh && (hi - 1) % 2 == 0) {
        hi as u32 - 1
    } else {
        hi as u32
    }
}

fn finite_amax(xs: &[f32]) -> f32 {
    xs.iter()
        .filter(|x| x.is_finite())
        .fold(0f32, |m, x| m.max(x.abs()))
}

/// NVFP4 rounded to nearest, independently: (codes, block bytes, tensor scale, values).
fn nvfp4_reference(x: &[f32]) -> (Vec<u32>, Vec<u32>, f32, Vec<f32>) {
    let grid = e4m3_grid();
    let mut s = finite_amax(x) / (448f32 * 6f32);
    if s == 0.0 {
        s = 1.0;
    }
    let (mut codes, mut bytes, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for blk in x.chunks(16) {
        let t = (finite_amax(blk) / 6f32) / s;
        let byte = nearest(&grid, t as f64);
        bytes.push(byte);
        let scale = grid[byte as usize] as f32;
        let d = scale * s;
        for &v in blk {
            let q = if d == 0.0 { 0.0 } else { v / d };
            let mag = nearest(&E2M1, q as f64);
            let sign = if v.is_sign_negative() { 8 } else { 0 };
            codes.push(sign | mag);
            let value = (E2M1[mag as usize] as f32 * scale) * s;
            values.push(if sign == 8 { -value } else { value });
        }
    }
    (codes, bytes, s, values)
}

/// Test tensors: a spread of magnitudes over many binades, whole zero blocks, blocks far
/// below the tensor's amax (their E4M3 scale underflows), subnormal f32 values, and
/// tensors whose amax is itself tiny (the tensor scale is subnormal).
fn inputs() -> Vec<Vec<f32>> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    for case in 0..40 {
        let n = 1 + (next() % 300) as usize;
        let spread = (case % 8) * 6;
        let base = match case % 5 {
            0 => 1.0,
            1 => 1e-20,
            2 => 1e20,
            3 => 1e-36,
            _ => 3e-41,
        };
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let r = next();
                if (i / 16) % 7 == 3 {
                    return 0.0;
                }
                let e = (r % (2 * spread as u64 + 1)) as i32 - spread;
                let m = 1.0 + (r >> 40) as f64 / (1u64 << 24) as f64;
                let sign = if r & 1 == 1 { -1.0 } else { 1.0 };
                (sign * m * 2f64.powi(e) * base) as f32
            })
            .collect();
        out.push(x);
    }
    out
}

#[test]
fn nvfp4_matches_an_independent_implementation_of_the_recipe() {
    let f: Format = "nvfp4".parse().unwrap();
    let (mut subnormal_scales, mut zero_scales) = (0, 0);
    for (k, x) in inputs().iter().enumerate() {
        let q = quantize(x, &QuantSpec::new(f));
        let (codes, bytes, s, values) = nvfp4_reference(x);
        assert_eq!(unpack(&q.words, 4, x.len()), codes, "case {k}: codes");
        assert_eq!(q.scales[0], s.to_bits(), "case {k}: tensor scale");
        let got_bytes: Vec<u32> = (0..x.len().div_ceil(16))
            .map(|b| q.block_scale_byte(b) as u32)
            .collect();
        assert_eq!(got_bytes, bytes, "case {k}: block scales");
        let y = dequantize(&q);
        for (i, (a, b)) in y.iter().zip(&values).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "case {k}, element {i}: {a} vs {b}"
            );
        }
        subnormal_scales += (s < f32::MIN_POSITIVE) as usize;
        zero_scales += bytes.iter().filter(|&&b| b == 0).count();
    }
    // The cases reach the edges they are meant to.
    assert!(subnormal_scales > 0 && zero_scales > 0);
}

#[test]
fn nvfp4_error_is_within_half_a_step_of_each_block() {
    // Each element lies within half an E2M1 step (at most 1 of the scaled grid at 4-6) of
    // its value, in units of its block's decode scale, up to the f32 roundings of the
    // scale product, the division and the decode (3 ulps of the value, 2^-22 relative).
    for x in inputs() {
        let q = quantize(&x, &QuantSpec::new("nvfp4".parse().unwrap()));
        let y = dequantize(&q);
        let s = f32::from_bits(q.scales[0]) as f64;
        for (i, (&a, &b)) in x.iter().zip(&y).enumerate() {
            let byte = q.block_scale_byte(i / 16) as usize;
            let d = e4m3_grid()[byte] * s;
            if d == 0.0 || (a as f64).abs() > 6.0 * d {
                continue;
            }
            let step = if (a as f64).abs() >= 4.0 * d {
                2.0
            } else if (a as f64).abs() >= 2.0 * d {
                1.0
            } else {
                0.5
            };
            let err = (a as f64 - b as f64).abs();
            let bound = step / 2.0 * d * (1.0 + 1e-6) + 1e-45;
            assert!(err <= bound, "{a} -> {b}: error {err} over {bound}");
        }
    }
}

#[test]
fn block_formats_parse_print_and_refuse() {
    let nv: Format = "nvfp4".parse().unwrap();
    assert_eq!(nv, Format::Block(BlockFormat::NVFP4));
    assert_eq!(nv.to_string(), "nvfp4");
    // The general form names the same formats, and prints the named ones by name.
    for (text, name) in [
        ("block(elem=e2m1,size=16,scale=e4m3)", "nvfp4"),
        ("block(elem=e4m3)", "mxfp8_e4m3"),
        ("block(elem=fixed(wl=8,fl=6),size=32,scale=e8m0)", "mxint8"),
        (
            "block(elem=float(e=3,m=2,specials=none),size=64)",
            "block(elem=e3m2,size=64,scale=e8m0)",
        ),
        (
            "Block( elem = fixed(wl=6,fl=4), size=20, scale=E4M3 )",
            "block(elem=fixed(wl=6,fl=4),size=20,scale=e4m3)",
        ),
    ] {
        let f: Format = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(f.to_string(), name, "{text}");
        assert_eq!(f.to_string().parse::<Format>().unwrap(), f, "{text}");
    }
    let b = "block(elem=e4m3,size=20,scale=e4m3)"
        .parse::<Format>()
        .unwrap()
        .block()
        .unwrap();
    assert_eq!((b.size, b.scale), (20, BlockScale::E4m3));
    // 45 elements: 3 blocks, one word of bytes after the tensor scale; 6 words of codes.
    assert_eq!(b.scale_words(45), 2);
    assert_eq!(Format::Block(b).stored_bytes(45), (12 + 2) * 4);
    for (text, why) in [
        ("block(size=16)", "needs elem"),
        ("block(elem=e2m1,size=0)", "1..=1024"),
        ("block(elem=e2m1,size=2000)", "1..=1024"),
        ("block(elem=e2m1,size=-3)", "whole number"),
        ("block(elem=e2m1,scale=e5m2)", "not one of e8m0"),
        ("block(elem=nvfp4)", "not the block format"),
        ("block(elem=e2m1,size=16,size=32)", "given twice"),
        ("block(elem=e2m1,shape=16)", "unknown key"),
        ("block(elem=bf16,scale=e4m3)", "too wide for an E4M3 scale"),
        ("block(elem=float(e=8,m=3,specials=none))", "beyond f32"),
        ("block(elem=e2m1", "unknown format"),
    ] {
        let e = text.parse::<Format>().unwrap_err().to_string();
        assert!(e.contains(why), "{text}: {e}");
    }
}

#[test]
fn stochastic_nvfp4_codes_are_the_neighbours_of_the_scaled_value() {
    // Stochastic rounding picks, for each element, one of the two E2M1 neighbours of
    // x / d around it (d the block's decode scale), never anything else.
    let spec = QuantSpec {
        rounding: Rounding::Stochastic { bits: 16 },
        seed: 7,
        ..QuantSpec::new("nvfp4".parse().unwrap())
    };
    for x in inputs() {
        let q = quantize(&x, &spec);
        let codes = unpack(&q.words, 4, x.len());
        let s = f32::from_bits(q.scales[0]);
        for (i, (&v, &c)) in x.iter().zip(&codes).enumerate() {
            let d = e4m3_grid()[q.block_scale_byte(i / 16) as usize] as f32 * s;
            let r = if d == 0.0 { 0.0 } else { (v / d).abs() as f64 };
            let lo = E2M1.iter().rposition(|&g| g <= r).unwrap();
            let hi = E2M1.iter().position(|&g| g >= r).unwrap_or(7);
            let mag = (c & 7) as usize;
            assert!(mag == lo || mag == hi, "{v}: code {c} for {r} x {d}");
        }
    }
}
