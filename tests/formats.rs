//! Format text round-trips, properties, and clear errors for bad text.

use lowp::format::{FloatFormat, Format};

#[test]
fn text_round_trips() {
    for t in [
        "fp32",
        "bf16",
        "fp16",
        "e5m2",
        "e4m3",
        "e3m2",
        "e2m3",
        "e2m1",
        "mxfp8_e4m3",
        "mxfp8_e5m2",
        "mxfp6_e3m2",
        "mxfp6_e2m3",
        "mxfp4_e2m1",
        "mxint8",
        "float(e=5,m=4)",
        "float(e=4,m=3,bias=11,specials=none)",
        "float(e=3,m=0,specials=nan)",
        "float(e=6,m=9,subnormals=false)",
        "fixed(wl=8,fl=4)",
        "fixed(wl=32,fl=0)",
    ] {
        let f: Format = t.parse().unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(f.to_string(), t);
        assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
    }
    // Aliases print canonically.
    let f: Format = "float(e=4,m=3,specials=nan)".parse().unwrap();
    assert_eq!(f.to_string(), "e4m3");
    let f: Format = " Float( m=10 , e=5 ) ".parse().unwrap();
    assert_eq!(f.to_string(), "fp16");
}

#[test]
fn properties_of_named_formats() {
    let p = |t: &str| t.parse::<Format>().unwrap().properties();
    assert_eq!(p("e4m3").max, 448.0);
    assert_eq!(p("e5m2").max, 57344.0);
    assert_eq!(p("e3m2").max, 28.0);
    assert_eq!(p("e2m3").max, 7.5);
    assert_eq!(p("e2m1").max, 6.0);
    assert_eq!(p("fp16").max, 65504.0);
    assert_eq!(p("bf16").max, f32::from_bits(0x7f7f0000));
    assert_eq!(p("fp32").max, f32::MAX);
    assert_eq!(p("float(e=4,m=3,bias=11,specials=none)").max, 30.0);
    assert_eq!(p("fixed(wl=8,fl=4)").max, 7.9375);
    assert_eq!(p("fp16").min_subnormal, 2f32.powi(-24));
    assert_eq!(p("fp16").min_normal, Some(2f32.powi(-14)));
    assert_eq!(p("e4m3").epsilon, 0.125);
    assert!(p("e5m2").has_inf && p("e5m2").has_nan);
    assert!(!p("e4m3").has_inf && p("e4m3").has_nan);
    assert!(!p("e2m1").has_inf && !p("e2m1").has_nan);
    // OCP emax of the MX element types.
    for (t, emax) in [
        ("mxfp8_e4m3", 8),
        ("mxfp8_e5m2", 15),
        ("mxfp6_e3m2", 4),
        ("mxfp6_e2m3", 2),
        ("mxfp4_e2m1", 2),
        ("mxint8", 0),
    ] {
        assert_eq!(p(t).emax, emax, "{t}");
    }
}

#[test]
fn stored_bytes_are_dense() {
    let f = |t: &str| t.parse::<Format>().unwrap();
    assert_eq!(f("e4m3").stored_bytes(1000), 1000);
    assert_eq!(f("e2m1").stored_bytes(1000), 500);
    assert_eq!(f("float(e=3,m=2)").stored_bytes(32), 24);
    assert_eq!(f("fixed(wl=5,fl=2)").stored_bytes(7), 8); // 35 bits -> 2 words
    assert_eq!(f("mxfp4_e2m1").stored_bytes(64), 32 + 4); // 2 blocks, scales in one word
}

#[test]
fn bad_text_says_what_is_wrong() {
    let err = |t: &str| t.parse::<Format>().unwrap_err().to_string();
    assert!(err("float(e=0,m=3)").contains("e=0"));
    assert!(err("float(e=9,m=3)").contains("1..=8"));
    assert!(err("float(e=5,m=24)").contains("0..=23"));
    assert!(err("float(e=8,m=23,bias=10)").contains("bias"));
    assert!(err("float(e=8,m=24)").contains("m=24"));
    assert!(err("fixed(wl=33,fl=0)").contains("1..=32"));
    assert!(err("fixed(wl=8,fl=9)").contains("fl"));
    assert!(err("fp7").contains("allowed"));
    assert!(err("float(e=4)").contains("needs m"));
    assert!(err("float(e=4,m=3,specials=inf)").contains("ieee, nan, none"));
    assert!(err("float(e=4,m=3,x=1)").contains("unknown key"));
    assert!(err("float(e=4,m=0)").contains("NaN"));
    assert!(err("float(e=4,m=3,bias=200)").contains("allowed biases"));
}

/// `float(e=8,m=7,specials=none)` (QPyTorch's `float_quantize(x, 8, 7)`): every one of its
/// 65,536 codes decodes to the f32 whose top half it is (bfloat16's layout), except the
/// all-ones exponent, finite values at 2^128 and beyond whose f32 images are ±Inf.
#[test]
fn e8_with_every_exponent_code_decodes_like_bf16_below_2_to_128() {
    let f: Format = "float(e=8,m=7,specials=none)".parse().unwrap();
    let Format::Float(ff) = f else { unreachable!() };
    assert!(ff.beyond_f32());
    assert_eq!(ff.max_f64(), (2.0 - 2f64.powi(-7)) * 2f64.powi(128));
    for code in 0..1u32 << 16 {
        let got = f.element().decode_bits(code, 0);
        let want = if (code >> 7) & 0xff == 0xff {
            (code & 0x8000) << 16 | 0x7f80_0000
        } else {
            code << 16
        };
        assert_eq!(got, want, "code {code:#06x}");
    }
    assert!(!FloatFormat::BF16.beyond_f32());
}
