//! `lowp formats`: the table of named formats, or one format described.

use lowp::format::{BlockScale, Format, ScalarFormat, Specials};

fn g(v: f32) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:.4e}")
    }
}

fn bits_text(f: &Format) -> String {
    match f.block() {
        Some(b) if b.scale == BlockScale::E4m3 => format!("{}+8/{}+32/tensor", f.bits(), b.size),
        Some(b) => format!("{}+8/{}", f.bits(), b.size),
        None => f.bits().to_string(),
    }
}

/// Prints the table, or the description of `text`.
pub fn run(text: Option<&str>) -> Result<(), String> {
    match text {
        None => {
            println!(
                "{:<12} {:>16} {:>12} {:>12} {:>12} {:>10} {:>4} {:>4}",
                "format", "bits", "max", "min normal", "min >0", "epsilon", "inf", "nan"
            );
            for f in Format::named() {
                let p = f.properties();
                println!(
                    "{:<12} {:>16} {:>12} {:>12} {:>12} {:>10} {:>4} {:>4}",
                    f.to_string(),
                    bits_text(&f),
                    g(p.max),
                    p.min_normal.map_or("-".into(), g),
                    g(p.min_subnormal),
                    g(p.epsilon),
                    if p.has_inf { "yes" } else { "no" },
                    if p.has_nan { "yes" } else { "no" },
                );
            }
            println!(
                "\nAlso: float(e=E,m=M[,bias=B][,specials=ieee|nan|none][,subnormals=false]), fixed(wl=W,fl=F) and\nblock(elem=FORMAT,size=N,scale=e8m0|e4m3): N elements of FORMAT sharing a power-of-two\nscale, or an E4M3 scale under an fp32 tensor scale (nvfp4 is block(elem=e2m1,size=16,scale=e4m3))."
            );
            println!("Describe any of them with: lowp formats 'float(e=5,m=4)'");
            Ok(())
        }
        Some(t) => describe(&t.parse::<Format>().map_err(|e| e.to_string())?),
    }
}

fn describe(f: &Format) -> Result<(), String> {
    let p = f.properties();
    println!("format        {f}");
    match f.element() {
        ScalarFormat::Float(x) => {
            let sp = match x.specials {
                Specials::Ieee => "ieee: the top exponent holds ±Inf and NaN",
                Specials::Nan => "nan: only the all-ones code is NaN; no Inf",
                Specials::None => "none: every code is finite; overflow saturates, NaN becomes +0",
            };
            println!(
                "layout        1 sign, {} exponent, {} mantissa bits; bias {}",
                x.e, x.m, x.bias
            );
            println!("specials      {sp}");
            println!(
                "subnormals    {}",
                if x.subnormals {
                    "yes"
                } else {
                    "no (flushed to zero)"
                }
            );
        }
        ScalarFormat::Fixed(x) => {
            println!(
                "layout        {}-bit two's complement, value k * 2^-{}",
                x.wl, x.fl
            );
            println!(
                "range         {} .. {}",
                g(-(x.min_int_mag() as f64 / 2f64.powi(x.fl as i32)) as f32),
                g(p.max)
            );
        }
    }
    match f.block() {
        Some(b) if b.scale == BlockScale::E8m0 => println!(
            "blocks        {} {} elements share one E8M0 scale 2^(floor(log2 amax) - {})",
            b.size, b.element, p.emax
        ),
        Some(b) => println!(
            "blocks        {} {} elements share one E4M3 scale, (amax / {}) / tensor scale to \
             nearest; the tensor's fp32 scale is its amax / (448 x {})",
            b.size,
            b.element,
            g(p.max),
            g(p.max)
        ),
        None => {}
    }
    println!("bits          {}", bits_text(f));
    match f {
        Format::Float(x) if x.beyond_f32() => println!(
            "max           {:.6e} (2^{} and above lie beyond f32: their f32 images are inf)",
            x.max_f64(),
            x.top_exp()
        ),
        _ => println!("max           {}", g(p.max)),
    }
    if let Some(n) = p.min_normal {
        println!("min normal    {}", g(n));
    }
    println!("min positive  {}", g(p.min_subnormal));
    println!("epsilon       {}", g(p.epsilon));
    println!("emax          {}", p.emax);
    println!(
        "stored bytes  {} per 1024 elements (fp32: 4096)",
        f.stored_bytes(1024)
    );
    let el = f.element();
    if el.bits() <= 6 {
        let vals: Vec<String> = (0..1u32 << el.bits())
            .map(|c| f32::from_bits(el.decode_bits(c, 0)))
            .filter(|v| v.is_finite() && v.is_sign_positive())
            .map(g)
            .collect();
        println!("values >= 0   {}", vals.join(" "));
    }
    Ok(())
}
