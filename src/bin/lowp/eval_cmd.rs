//! `lowp eval`: a checkpoint's test loss and accuracy, without training.

use crate::args::{self, Device};
use crate::train_cmd::{args_from_record, data_of, plan_of};
use lowp::train::checkpoint;
use lowp::train::cpu::CpuTrainer;
use lowp::train::gpu::GpuTrainer;
use lowp::train::run::{Trainer, evaluate};
use std::path::PathBuf;

/// Arguments of `lowp eval`.
#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint (.safetensors), or a run folder holding checkpoint.safetensors.
    checkpoint: PathBuf,
    /// The data folder (default: the one the run trained on). Its training set gives the
    /// normalization, as in training.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Evaluate on the GPU or on the CPU reference.
    #[arg(long, value_enum, default_value_t = Device::Gpu)]
    device: Device,
    /// Print the result as one JSON line.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(a: &Args) -> Result<(), String> {
    let file = checkpoint::file_of(&a.checkpoint);
    let (state, meta) = checkpoint::load(&file).map_err(|e| e.to_string())?;
    let (run, src) = args_from_record(&meta, a.data.as_deref())?;
    let (train, test) = data_of(&run)?;
    let plan = plan_of(&run, &train, &src)?;
    let batch = run.batch();
    let ctx;
    let mut trainer = match a.device {
        Device::Cpu => Trainer::cpu(CpuTrainer::new(plan)),
        Device::Gpu => {
            ctx = args::gpu()?;
            Trainer::Gpu(Box::new(
                GpuTrainer::new(&ctx, plan, batch).map_err(|e| e.to_string())?,
            ))
        }
    };
    trainer.restore(&state).map_err(|e| e.to_string())?;
    let (loss, acc) = evaluate(&mut trainer, &test, batch).map_err(|e| e.to_string())?;
    if a.json {
        let line = serde_json::json!({
            "checkpoint": file.display().to_string(),
            "step": state.step,
            "test_loss": loss,
            "test_acc": acc,
            "test_images": test.len(),
        });
        println!("{line}");
    } else {
        println!(
            "{} (step {}): test loss {loss:.6}, accuracy {:.2}% on {} images",
            file.display(),
            state.step,
            100.0 * acc,
            test.len()
        );
    }
    Ok(())
}
