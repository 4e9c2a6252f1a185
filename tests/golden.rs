//! The CPU reference against every row of the golden vectors from gfloat and ml_dtypes.

mod common;

use common::{read_blocks, read_csv, same_value};
use lowp::format::{Format, MX_BLOCK, ScalarFormat};
use lowp::quant::{ElementRounding, QuantSpec, Rounding, round_element};
use lowp::reference;

const FLOATS: [(&str, &str); 14] = [
    ("bf16", "bf16"),
    ("fp16", "fp16"),
    ("e5m2", "e5m2"),
    ("e4m3", "e4m3"),
    ("e3m2", "e3m2"),
    ("e2m3", "e2m3"),
    ("e2m1", "e2m1"),
    ("float_e3_m4", "float(e=3,m=4)"),
    ("float_e4_m3", "float(e=4,m=3)"),
    ("float_e5_m7", "float(e=5,m=7)"),
    ("float_e6_m5", "float(e=6,m=5)"),
    ("float_e8_m3", "float(e=8,m=3)"),
    (
        "float_e4_m3_bias11_none",
        "float(e=4,m=3,bias=11,specials=none)",
    ),
    ("fp16", "float(e=5,m=10)"),
];

fn fake(el: &ScalarFormat, x: u32, rounding: Rounding, saturate: bool, rand: u32) -> u32 {
    let er = ElementRounding {
        rounding,
        saturate,
        scale_exp: 0,
    };
    el.decode_bits(round_element(el, x, &er, rand).code, 0)
}

/// Compares one column; returns the number of mismatching rows (printing the first few).
fn check_column(
    file: &str,
    col: &str,
    rows: &[Vec<u32>],
    idx: usize,
    f: impl Fn(&[u32]) -> u32,
) -> usize {
    let mut bad = 0;
    for r in rows {
        let got = f(r);
        if !same_value(got, r[idx]) {
            if bad < 5 {
                eprintln!(
                    "{file} {col}: input {:08x} want {:08x} got {got:08x}",
                    r[0], r[idx]
                );
            }
            bad += 1;
        }
    }
    bad
}

#[test]
fn float_encode_matches_every_golden_row() {
    let mut total_bad = 0;
    let mut total_rows = 0;
    for (file, text) in FLOATS {
        let fmt: Format = text.parse().unwrap();
        let el = fmt.element();
        let name = format!("{file}.encode.csv");
        let (h, rows) = read_csv(&name);
        assert_eq!(
            h,
            [
                "input_bits",
                "rne",
                "rne_sat",
                "rtz",
                "sr_random",
                "sr16",
                "rna"
            ]
        );
        assert!(rows.len() > 1000, "{name} has only {} rows", rows.len());
        total_rows += rows.len();
        let cols: [(&str, usize, Rounding, bool); 5] = [
            ("rne", 1, Rounding::Nearest, false),
            ("rne_sat", 2, Rounding::Nearest, true),
            ("rtz", 3, Rounding::TowardZero, false),
            ("sr16", 5, Rounding::Stochastic { bits: 16 }, false),
            ("rna", 6, Rounding::NearestAway, false),
        ];
        for (col, idx, rounding, sat) in cols {
            total_bad += check_column(&name, col, &rows, idx, |r| {
                fake(&el, r[0], rounding, sat, r[4] << 16)
            });
        }
    }
    assert!(total_rows > 60_000);
    assert_eq!(total_bad, 0, "{total_bad} golden mismatches");
}

#[test]
fn float_decode_matches_every_golden_code() {
    let mut bad = 0;
    for (file, text) in FLOATS {
        let el = text.parse::<Format>().unwrap().element();
        let (h, rows) = read_csv(&format!("{file}.decode.csv"));
        assert_eq!(h, ["code", "value_bits"]);
        assert_eq!(
            rows.len(),
            1usize << el.bits(),
            "{file}: not every code listed"
        );
        bad += check_column(file, "decode", &rows, 1, |r| el.decode_bits(r[0], 0));
    }
    assert_eq!(bad, 0, "{bad} decode mismatches");
}

#[test]
fn fixed_encode_matches_every_golden_row() {
    let mut bad = 0;
    for (wl, fl) in [(16, 8), (4, 2), (8, 4), (8, 6)] {
        let name = format!("fixed_wl{wl}_fl{fl}.encode.csv");
        let el = format!("fixed(wl={wl},fl={fl})")
            .parse::<Format>()
            .unwrap()
            .element();
        let (h, rows) = read_csv(&name);
        assert_eq!(
            h,
            [
                "input_bits",
                "rne_sat",
                "rtz_sat",
                "sr_random",
                "sr16_sat",
                "rna_sat"
            ]
        );
        let cols: [(&str, usize, Rounding); 4] = [
            ("rne_sat", 1, Rounding::Nearest),
            ("rtz_sat", 2, Rounding::TowardZero),
            ("sr16_sat", 4, Rounding::Stochastic { bits: 16 }),
            ("rna_sat", 5, Rounding::NearestAway),
        ];
        for (col, idx, rounding) in cols {
            bad += check_column(&name, col, &rows, idx, |r| {
                fake(&el, r[0], rounding, true, r[3] << 16)
            });
        }
    }
    assert_eq!(bad, 0, "{bad} fixed-point mismatches");
}

#[test]
fn mx_blocks_match_every_golden_block() {
    let mut bad = 0;
    let mut blocks = 0;
    for name in [
        "mxfp8_e4m3",
        "mxfp8_e5m2",
        "mxfp6_e3m2",
        "mxfp6_e2m3",
        "mxfp4_e2m1",
        "mxint8",
    ] {
        let fmt: Format = name.parse().unwrap();
        for row in read_blocks(&format!("{name}.blocks.csv")) {
            assert_eq!(row.len(), 2 * MX_BLOCK + 1);
            blocks += 1;
            let x: Vec<f32> = row[..MX_BLOCK].iter().map(|&b| f32::from_bits(b)).collect();
            let q = reference::quantize(&x, &QuantSpec::new(fmt));
            let scale = f32::from_bits(lowp::quant::make_f32_bits(
                false,
                1,
                q.block_scale_byte(0) as i32 - 127,
            ));
            let mut ok = scale.to_bits() == row[MX_BLOCK];
            let y = reference::dequantize(&q);
            for (j, v) in y.iter().enumerate() {
                ok &= same_value(v.to_bits(), row[MX_BLOCK + 1 + j]);
            }
            if !ok {
                if bad < 5 {
                    eprintln!(
                        "{name}: block {blocks} scale want {:08x} got {:08x}; out {:08x?} want {:08x?}",
                        row[MX_BLOCK],
                        scale.to_bits(),
                        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        &row[MX_BLOCK + 1..]
                    );
                }
                bad += 1;
            }
        }
    }
    assert!(blocks > 100);
    assert_eq!(bad, 0, "{bad} of {blocks} MX blocks mismatch");
}
