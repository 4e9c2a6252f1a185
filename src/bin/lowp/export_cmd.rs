//! `lowp export`: a checkpoint's parameters as a safetensors file for other tools.

use lowp::atomic_file::write_atomic;
use lowp::train::checkpoint::{self, safetensors_bytes};
use lowp::train::export::{ExportAs, export};
use std::path::PathBuf;

/// How `--as` writes the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AsArg {
    /// f32 values (scales applied): loads anywhere.
    Fp32,
    /// The stored codes: e4m3 as F8_E4M3, e5m2 as F8_E5M2, fp16, bf16, fixed point as
    /// I8/I16/I32, other formats as U8/U16/U32 codes; scales as NAME.block_scales (F8_E8M0,
    /// or F8_E4M3 with the fp32 NAME.tensor_scale) or NAME.scale_exp; each tensor's format in the metadata (format.NAME).
    Stored,
}

/// Arguments of `lowp export`.
#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint (.safetensors), or a run folder holding checkpoint.safetensors.
    checkpoint: PathBuf,
    /// The file to write.
    out: PathBuf,
    /// Write f32 values or the stored codes.
    #[arg(long = "as", value_enum, default_value_t = AsArg::Fp32)]
    as_: AsArg,
}

/// Runs the command.
pub fn run(a: &Args) -> Result<(), String> {
    let file = checkpoint::file_of(&a.checkpoint);
    let (state, meta) = checkpoint::load(&file).map_err(|e| e.to_string())?;
    let how = match a.as_ {
        AsArg::Fp32 => ExportAs::Fp32,
        AsArg::Stored => ExportAs::Stored,
    };
    let (blobs, info) = export(&state, &meta, how)?;
    write_atomic(&a.out, &safetensors_bytes(&blobs, &info))
        .map_err(|e| format!("{}: {e}", a.out.display()))?;
    println!("{:<28} {:<9} shape", "tensor", "dtype");
    for b in &blobs {
        let dims: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
        println!(
            "{:<28} {:<9} [{}]",
            b.name,
            b.dtype.to_string(),
            dims.join(", ")
        );
    }
    println!(
        "wrote {} ({} tensors, step {})",
        a.out.display(),
        blobs.len(),
        state.step
    );
    Ok(())
}
