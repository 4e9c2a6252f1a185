//! GPU kernels equal the CPU reference bit for bit: every format, rounding mode,
//! saturation and scaling option, on lengths around word and dispatch boundaries.

mod common;

use lowp::format::Format;
use lowp::gpu::buffers::{read_u32, upload_f32, zeroed};
use lowp::gpu::{Encoder, GpuContext};
use lowp::ops;
use lowp::ops::elementwise::record_convert;
use lowp::ops::packed_io::Dst;
use lowp::quant::{QuantSpec, Rounding, Scaling};
use lowp::reference;
use std::sync::OnceLock;

/// A context whose dispatches put at most 3 workgroups along x, so that any tensor of
/// more than 768 work items takes the two-dimensional dispatch path.
fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| common::gpu().with_max_groups_x(3))
}

const FORMATS: [&str; 29] = [
    "fp32",
    "bf16",
    "fp16",
    "e5m2",
    "e4m3",
    "e3m2",
    "e2m3",
    "e2m1",
    "float(e=5,m=4)",
    "float(e=4,m=3,bias=11,specials=none)",
    "float(e=3,m=0,specials=nan)",
    "float(e=6,m=9,subnormals=false)",
    "float(e=8,m=3)",
    "float(e=2,m=12,bias=-3)",
    "fixed(wl=8,fl=4)",
    "fixed(wl=16,fl=8)",
    "fixed(wl=5,fl=5)",
    "fixed(wl=32,fl=16)",
    "mxfp8_e4m3",
    "mxfp8_e5m2",
    "mxfp6_e3m2",
    "mxfp6_e2m3",
    "mxfp4_e2m1",
    "mxint8",
    "nvfp4",
    "block(elem=e4m3,size=16,scale=e4m3)",
    "block(elem=e3m2,size=7,scale=e8m0)",
    "block(elem=fixed(wl=6,fl=4),size=20,scale=e4m3)",
    "block(elem=fp16,size=64,scale=e4m3)",
];

const ROUNDINGS: [Rounding; 5] = [
    Rounding::Nearest,
    Rounding::NearestAway,
    Rounding::TowardZero,
    Rounding::Stochastic { bits: 16 },
    Rounding::Stochastic { bits: 5 },
];

/// Lengths that end mid-word, on word boundaries, and past one 2-D dispatch row.
const LENGTHS: [usize; 6] = [1, 31, 97, 1024, 3 * 256 * 4 + 7, 3 * 256 * 32 + 33];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Quantizes `n` tricky inputs on both sides and asserts every output agrees; returns the
/// exception counts.
fn check(spec: &QuantSpec, n: usize, seed: u64) -> lowp::quant::Exceptions {
    let c = ctx();
    let x = common::tricky_inputs(n, seed, spec.format.max());
    let what = format!(
        "{} {} sat={} {:?} n={n}",
        spec.format, spec.rounding, spec.saturate, spec.scaling
    );
    let r = reference::quantize(&x, spec);
    let (t, exc) = ops::quantize(c, &x, &[n], spec).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        t.read_words(c).unwrap(),
        r.words,
        "{what}: packed codes differ"
    );
    assert_eq!(exc, r.exceptions, "{what}: exception counts differ");
    match (spec.format.block(), spec.scaling) {
        (Some(_), _) => assert_eq!(t.read_scales(c).unwrap(), r.scales, "{what}: block scales"),
        (None, Scaling::Tensor) => assert_eq!(
            t.read_scales(c).unwrap(),
            vec![r.scale_exp as u32],
            "{what}: tensor scale"
        ),
        _ => {}
    }
    // The GPU buffers are the dense-packed codes and scale words, each buffer in whole
    // 16-byte vectors: less than 16 bytes a buffer over the dense size.
    assert_eq!(
        t.stored_bytes(),
        device_bytes(spec, n),
        "{what}: stored bytes"
    );
    assert_eq!(
        r.stored_bytes(),
        (r.words.len() + r.scales.len()) * 4
            + 4 * (t.read_scales(c).unwrap().len() == 1 && spec.format.block().is_none()) as usize
    );
    let y = ops::dequantize(c, &t).unwrap();
    let yr = reference::dequantize(&r);
    assert_eq!(bits(&y), bits(&yr), "{what}: dequantized values differ");
    let (fy, fexc) = ops::fake_quantize(c, &x, spec).unwrap();
    assert_eq!(bits(&fy), bits(&yr), "{what}: fake-quantize differs");
    assert_eq!(
        fexc, r.exceptions,
        "{what}: fake-quantize exception counts differ"
    );
    exc
}

/// Lengths of the sweep: one element; a word and a bit (every width), two MX blocks and a
/// bit; past one 2-D dispatch row of the test context (768 items) even for 4-bit codes,
/// whose 8 elements share one word and one work item.
const SWEEP_LENGTHS: [usize; 4] = [1, 33, 2 * 32 + 5, 3 * 256 * 8 + 7];

/// What the inputs alone call for, independent of the code under test: NaN inputs
/// (exactly), and lower bounds on overflows and underflows where no scale moves the grid.
struct Called {
    nan: u64,
    overflow: u64,
    underflow: u64,
    /// Finite inputs at least one step past the largest finite value.
    finite_overflow: u64,
}

fn called_for(x: &[f32], spec: &QuantSpec) -> Called {
    let p = spec.format.properties();
    let unscaled = spec.scaling == Scaling::None && spec.format.block().is_none();
    // The grid's spacing just below max: epsilon 2^emax for floats, the resolution for fixed
    // (doubled there: two's complement reaches one step further below zero, -max - step).
    let step = match spec.format {
        Format::Fixed(_) => 2.0 * p.epsilon as f64,
        _ => p.epsilon as f64 * 2f64.powi(p.emax),
    };
    // Beyond max + step every rounding mode leaves the finite range (toward-zero included,
    // which clamps but still counts it). Below min_subnormal 2^-18 every mode gives zero:
    // nearest and toward-zero plainly; stochastic with k <= 16 bits rounds the fraction,
    // under 2^-18, to 0 of 2^k, which no k-bit random integer lifts to 2^k.
    let beyond = |v: f32| v.is_finite() && v.abs() as f64 >= p.max as f64 + step;
    let tiny = |v: f32| v != 0.0 && ((v.abs() as f64) < p.min_subnormal as f64 * 2f64.powi(-18));
    let count = |f: &dyn Fn(f32) -> bool| x.iter().filter(|&&v| f(v)).count() as u64;
    let inf = count(&|v| v.is_infinite());
    let finite_overflow = if unscaled { count(&beyond) } else { 0 };
    Called {
        nan: count(&|v| v.is_nan()),
        overflow: inf + finite_overflow,
        underflow: if unscaled { count(&tiny) } else { 0 },
        finite_overflow,
    }
}

#[test]
fn every_format_rounding_saturation_and_scaling_at_every_length() {
    let mut case = 0u64;
    // How often each kind of exception was called for and seen.
    let (mut overflows, mut underflows, mut nans, mut to_inf) = (0, 0, 0, 0);
    for f in FORMATS {
        let format: Format = f.parse().unwrap();
        for rounding in ROUNDINGS {
            for saturate in [false, true] {
                for scaling in [Scaling::None, Scaling::Tensor] {
                    if format.block().is_some() && scaling == Scaling::Tensor {
                        continue;
                    }
                    for n in SWEEP_LENGTHS {
                        let spec = QuantSpec {
                            format,
                            rounding,
                            saturate,
                            scaling,
                            seed: 0x1234_5678_9abc + case,
                            stream: case as u32 % 5,
                        };
                        let exc = check(&spec, n, case);
                        let want = called_for(&common::tricky_inputs(n, case, format.max()), &spec);
                        let what = format!("{f} {rounding} sat={saturate} {scaling:?} n={n}");
                        assert_eq!(exc.nan, want.nan, "{what}: NaN count");
                        assert!(exc.overflow >= want.overflow, "{what}: overflows");
                        assert!(exc.underflow >= want.underflow, "{what}: underflows");
                        overflows += want.finite_overflow.min(1);
                        underflows += want.underflow.min(1);
                        nans += want.nan.min(1);
                        // Without saturation, a format with Inf stores Inf for each value
                        // past its range (toward-zero clamps instead; MX elements saturate).
                        let props = format.properties();
                        let unsaturated = !saturate && format.block().is_none();
                        if unsaturated && props.has_inf && rounding != Rounding::TowardZero {
                            let y = reference::dequantize(&reference::quantize(
                                &common::tricky_inputs(n, case, format.max()),
                                &spec,
                            ));
                            let infs = y.iter().filter(|v| v.is_infinite()).count() as u64;
                            assert!(infs >= want.overflow, "{what}: {infs} Inf outputs");
                            to_inf += want.finite_overflow;
                        }
                        case += 1;
                    }
                }
            }
        }
    }
    // The inputs do call for each exception kind in many cases (not one element per mode).
    eprintln!(
        "cases with finite overflow {overflows}, underflow {underflows}, NaN {nans}; \
         finite values overflowing to Inf {to_inf}"
    );
    assert!(overflows >= 200 && underflows >= 200 && nans >= 300 && to_inf >= 1000);
}

#[test]
fn lengths_around_word_and_dispatch_boundaries() {
    for f in [
        "e4m3",
        "float(e=3,m=2)",
        "fixed(wl=7,fl=3)",
        "mxfp4_e2m1",
        "fp32",
    ] {
        for &n in &LENGTHS {
            for rounding in [Rounding::Nearest, Rounding::Stochastic { bits: 16 }] {
                let spec = QuantSpec {
                    rounding,
                    seed: n as u64,
                    ..QuantSpec::new(f.parse().unwrap())
                };
                let _ = check(&spec, n, n as u64 + 99);
            }
        }
    }
}

#[test]
fn convert_between_formats_matches_reference() {
    let c = ctx();
    let x = common::tricky_inputs(777, 5, 100.0);
    let a = QuantSpec::new("bf16".parse().unwrap());
    let b = QuantSpec {
        rounding: Rounding::Stochastic { bits: 16 },
        seed: 3,
        ..QuantSpec::new("mxfp6_e3m2".parse().unwrap())
    };
    let (t, _) = ops::quantize(c, &x, &[7, 111], &a).unwrap();
    let (u, exc) = ops::convert(c, &t, &b).unwrap();
    assert_eq!(u.shape(), &[7, 111]);
    let via = reference::dequantize(&reference::quantize(&x, &a));
    let r = reference::quantize(&via, &b);
    assert_eq!(u.read_words(c).unwrap(), r.words);
    assert_eq!(exc, r.exceptions);
    assert_eq!(u.stored_bytes(), device_bytes(&b, 777));
}

/// The bytes a packed tensor of `n` elements of `spec` takes on the device: its dense codes
/// and scale words, each buffer in whole 16-byte vectors (less than 16 bytes over a buffer's
/// dense size).
fn device_bytes(spec: &QuantSpec, n: usize) -> u64 {
    let bytes = lowp::gpu::tensor::device_bytes(spec, n);
    let dense = spec.stored_bytes(n) as u64;
    assert!(
        bytes >= dense && bytes < dense.max(4) + 32,
        "{bytes} for {dense} dense"
    );
    bytes
}

#[test]
fn bad_shapes_and_empty_tensors_are_errors() {
    let c = ctx();
    let spec = QuantSpec::new("e4m3".parse().unwrap());
    let e = ops::quantize(c, &[1.0, 2.0], &[3], &spec).err().unwrap();
    assert!(e.to_string().contains("shape"), "{e}");
    let e = ops::quantize(c, &[], &[0], &spec).err().unwrap();
    assert!(e.to_string().contains("empty"), "{e}");
    for bits in [0, 25, 32] {
        let bad = QuantSpec {
            rounding: Rounding::Stochastic { bits },
            ..spec
        };
        let e = ops::quantize(c, &[1.0], &[1], &bad).err().unwrap();
        assert!(e.to_string().contains("1..=24"), "{e}");
        let e = ops::fake_quantize(c, &[1.0], &bad).err().unwrap();
        assert!(e.to_string().contains("1..=24"), "{e}");
    }
    // A caller's buffer of 5 values in 20 bytes: the passes read and write four values at
    // a time, so they refuse it rather than read past its last whole vector.
    let raw = c.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("unpadded"),
        size: 20,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let e = ops::quantize::quantize_buffer(c, &raw, &[5], &spec)
        .err()
        .unwrap();
    assert!(e.to_string().contains("32 bytes"), "{e}");
    let (t, _) = ops::quantize(c, &[1.0; 5], &[5], &spec).unwrap();
    let mut enc = Encoder::new(c);
    let e = ops::quantize::dequantize_into(c, &mut enc, &t, &raw)
        .err()
        .unwrap();
    assert!(e.to_string().contains("32 bytes"), "{e}");
}

/// `--scale tensor` picks the smallest power of two 2^s with amax / 2^s <= max, found here by
/// an independent f64 search; with that scale no finite element overflows. Amax exactly at
/// max 2^k, one ulp above it, and spread over 2^-40..2^40, for floats and fixed point.
#[test]
fn tensor_scale_is_the_smallest_power_of_two_that_fits_amax() {
    let c = ctx();
    let mut checked = 0;
    for f in [
        "e4m3",
        "e5m2",
        "bf16",
        "e2m1",
        "float(e=4,m=3,bias=11,specials=none)",
        "fixed(wl=8,fl=4)",
        "fixed(wl=5,fl=5)",
    ] {
        let spec = QuantSpec {
            scaling: Scaling::Tensor,
            ..QuantSpec::new(f.parse().unwrap())
        };
        let max = spec.format.max() as f64;
        for k in -40..=40 {
            let exact = (max * 2f64.powi(k)) as f32;
            for amax in [exact, f32::from_bits(exact.to_bits() + 1), 1.37 * exact] {
                if !amax.is_normal() {
                    continue; // bf16's max 2^40 is beyond f32
                }
                let mut x = common::uniform(50, (k + 50) as u64, amax * 0.99);
                x[17] = -amax;
                // The smallest s with amax / 2^s <= max, by search from below.
                let mut s = -200;
                while amax as f64 / 2f64.powi(s) > max {
                    s += 1;
                }
                while amax as f64 / 2f64.powi(s - 1) <= max {
                    s -= 1;
                }
                let r = reference::quantize(&x, &spec);
                let (t, exc) = ops::quantize(c, &x, &[50], &spec).unwrap();
                assert_eq!(r.scale_exp, s, "{f}: amax {amax:e}");
                assert_eq!(
                    t.read_scales(c).unwrap(),
                    vec![s as u32],
                    "{f}: amax {amax:e}"
                );
                assert_eq!(
                    exc.overflow, 0,
                    "{f}: amax {amax:e} overflowed at scale 2^{s}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 6 * 81 * 3, "{checked} cases");
}

/// QPyTorch's `float_quantize(x, 8, M)` uses every exponent code, so its top binade lies
/// at 2^128, beyond f32: lowp takes `float(e=8,m=M,specials=none)` with those values' f32
/// images ±Inf. On a sweep of every 4099th f32 bit pattern (NaN, Inf, subnormals and the
/// top of f32's range included) and the neighbourhood of f32's max, GPU and CPU agree bit
/// for bit under every rounding; at M = 7 round-to-nearest-even equals the classic
/// bf16 conversion (add 0x7fff plus the kept lowest bit, truncate) and ties-away its
/// `+ 0x8000` form, for every input that is not NaN; at M = 23 every finite value is kept.
#[test]
fn e8_formats_with_every_exponent_code_give_inf_beyond_f32() {
    let c = ctx();
    let mut x: Vec<f32> = (0..(1u64 << 32))
        .step_by(4099)
        .map(|b| f32::from_bits(b as u32))
        .collect();
    for d in 0..64u32 {
        for s in [0, 0x8000_0000] {
            x.push(f32::from_bits(s | (0x7f7f_ffff - d * 0x1_0001)));
            x.push(f32::from_bits(s | (0x7f7f_8000 - d)));
        }
    }
    let n = x.len();
    for f in [
        "float(e=8,m=7,specials=none)",
        "float(e=8,m=3,specials=none)",
        "float(e=8,m=22,specials=none)",
        "float(e=8,m=23,specials=none)",
    ] {
        let format: Format = f.parse().unwrap();
        assert_eq!(format.properties().emax, 128, "{f}");
        for rounding in ROUNDINGS {
            for saturate in [false, true] {
                let spec = QuantSpec {
                    rounding,
                    saturate,
                    seed: 77,
                    ..QuantSpec::new(format)
                };
                let what = format!("{f} {rounding} sat={saturate}");
                let r = reference::quantize(&x, &spec);
                let (t, exc) = ops::quantize(c, &x, &[n], &spec).unwrap();
                assert_eq!(t.read_words(c).unwrap(), r.words, "{what}: codes");
                assert_eq!(exc, r.exceptions, "{what}: exceptions");
                let y = reference::dequantize(&r);
                assert_eq!(bits(&ops::dequantize(c, &t).unwrap()), bits(&y), "{what}");
                // No finite f32 lies beyond the format: nothing overflows but ±Inf inputs.
                let infs = x.iter().filter(|v| v.is_infinite()).count() as u64;
                assert_eq!(exc.overflow, infs, "{what}: overflows");
                let want: Option<fn(u32) -> u32> = match (f, rounding) {
                    ("float(e=8,m=7,specials=none)", Rounding::Nearest) => {
                        Some(|b| (b + 0x7fff + ((b >> 16) & 1)) >> 16 << 16)
                    }
                    ("float(e=8,m=7,specials=none)", Rounding::NearestAway) => {
                        Some(|b| (b + 0x8000) >> 16 << 16)
                    }
                    ("float(e=8,m=23,specials=none)", _) => Some(|b| b),
                    _ => None,
                };
                if let Some(want) = want {
                    for (v, q) in x.iter().zip(&y) {
                        if v.is_nan() {
                            continue;
                        }
                        let b = v.to_bits();
                        let m = want(b & 0x7fff_ffff).min(0x7f80_0000) | (b & 0x8000_0000);
                        assert_eq!(q.to_bits(), m, "{what}: {v:e} gave {q:e}");
                    }
                }
            }
        }
    }
    // Per-tensor scaling aims amax at the top binade, which f32 cannot reach: refused.
    let spec = QuantSpec {
        scaling: Scaling::Tensor,
        ..QuantSpec::new("float(e=8,m=7,specials=none)".parse().unwrap())
    };
    let e = match ops::quantize(c, &x[..8], &[8], &spec) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("per-tensor scaling of a format beyond f32 was accepted"),
    };
    assert!(e.contains("beyond f32"), "{e}");
}

/// Float formats on both sides of the edges of the kernels' branch-free decode and
/// rounding (shaders/lib/quant.wgsl `decodes_narrow`: every value a normal f32 or zero),
/// the named 8- and 16-bit ones, and formats past each edge that take the general path.
const EDGE_FORMATS: [&str; 17] = [
    "e4m3",
    "e5m2",
    "e3m2",
    "e2m3",
    "e2m1",
    "fp16",
    "bf16",
    "float(e=3,m=0,specials=nan)",
    "float(e=4,m=3,bias=11,specials=none)",
    "float(e=5,m=2,subnormals=false)",
    "float(e=2,m=12,bias=-3)",
    // Subnormals from 2^-126 (the smallest normal f32), then from 2^-127.
    "float(e=7,m=3,bias=124)",
    "float(e=7,m=3,bias=125)",
    "float(e=7,m=3,bias=125,subnormals=false)",
    // The top exponent field's values below 2^128, then past it.
    "float(e=7,m=2,bias=0,specials=none)",
    "float(e=7,m=2,bias=-1,specials=none)",
    "float(e=8,m=3)",
];

/// f32 inputs around every value of float format `spec`: each code's value, the midpoints
/// between neighbours and the f32s on either side of each (ties and their neighbours),
/// past the largest value, under the smallest, f32 subnormals, zeros, infinities, NaN.
fn around_every_value(spec: &QuantSpec) -> Vec<f32> {
    let el = spec.format.element();
    let mag_codes = 1u32 << (spec.format.bits() - 1);
    let mut values: Vec<f32> = (0..mag_codes)
        .map(|c| f32::from_bits(el.decode_bits(c, 0)))
        .filter(|v| v.is_finite())
        .collect();
    values.sort_by(f32::total_cmp);
    values.dedup();
    let next = |v: f32, up: bool| {
        let b = v.to_bits() as i64 + if up { 1 } else { -1 };
        f32::from_bits(b.clamp(0, 0x7f80_0000) as u32)
    };
    let mut x = vec![
        0.0,
        f32::INFINITY,
        f32::NAN,
        f32::from_bits(1),
        f32::from_bits(0x7f_ffff),
    ];
    for w in values.windows(2) {
        let mid = ((w[0] as f64 + w[1] as f64) / 2.0) as f32;
        x.extend([w[0], mid, next(mid, true), next(mid, false)]);
    }
    let (small, top) = (values[1], *values.last().unwrap());
    x.extend([
        top,
        next(top, true),
        1.5 * top,
        small / 2.0,
        next(small / 2.0, true),
    ]);
    x.extend([next(small / 2.0, false), small / 4.0, f32::MAX]);
    let negated: Vec<f32> = x.iter().map(|v| -v).collect();
    x.extend(negated);
    x
}

/// The kernels decode every code and round values around every code's value (each rounding
/// mode, saturating or not) bit for bit as the CPU reference does, on both sides of the
/// edges of their branch-free paths.
#[test]
fn formats_at_the_edges_of_the_fast_paths_decode_and_round_every_value_as_the_reference() {
    let c = ctx();
    for name in EDGE_FORMATS {
        let format: Format = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let el = format.element();
        // Every code, decoded.
        let codes: Vec<u32> = (0..1u32 << format.bits()).collect();
        let spec = QuantSpec::new(format);
        let words = lowp::format::pack(&codes, format.bits());
        let buffer = lowp::gpu::buffers::upload_u32(c, "codes", &words).unwrap();
        let t = lowp::gpu::Tensor::from_parts(vec![codes.len()], spec, buffer, None);
        let got = ops::dequantize(c, &t).unwrap();
        let fused = zeroed(c, "decoded", codes.len()).unwrap();
        let mut enc = Encoder::new(c);
        record_convert(c, &mut enc, &t, &fused, codes.len()).unwrap();
        enc.submit();
        let fused = read_u32(c, &fused, codes.len()).unwrap();
        for ((&code, v), f) in codes.iter().zip(&got).zip(fused) {
            assert_eq!(
                v.to_bits(),
                el.decode_bits(code, 0),
                "{name}: code {code:#x}"
            );
            assert_eq!(f, el.decode_bits(code, 0), "{name}: code {code:#x}, fused");
        }
        // Values around every value, rounded.
        let x = around_every_value(&spec);
        for rounding in ROUNDINGS {
            for saturate in [false, true] {
                let spec = QuantSpec {
                    rounding,
                    saturate,
                    seed: 9,
                    ..QuantSpec::new(format)
                };
                let what = format!("{name} {rounding} saturate {saturate}");
                let r = reference::quantize(&x, &spec);
                let (t, exc) = ops::quantize(c, &x, &[x.len()], &spec).unwrap();
                assert_eq!(t.read_words(c).unwrap(), r.words, "{what}: codes");
                assert_eq!(exc, r.exceptions, "{what}: exception counts");
                if saturate && rounding != Rounding::Nearest {
                    continue; // (each is another pipeline to compile for the fused kernel)
                }
                // The fused kernels' rounding on store (compiled for the format).
                let (y, stats) = (
                    ops::quantize::alloc_tensor(c, &[x.len()], &spec).unwrap(),
                    zeroed(c, "stats", 4).unwrap(),
                );
                let input = upload_f32(c, "x", &x).unwrap();
                let dst = Dst::Packed {
                    t: &y,
                    spec: &spec,
                    stats: &stats,
                    add: None,
                };
                let mut enc = Encoder::new(c);
                record_convert(c, &mut enc, &*input, dst, x.len()).unwrap();
                enc.submit();
                assert_eq!(y.read_words(c).unwrap(), r.words, "{what}: fused codes");
                let exc = ops::quantize::exceptions_from(&read_u32(c, &stats, 4).unwrap());
                assert_eq!(exc, r.exceptions, "{what}: fused exception counts");
            }
        }
    }
}
