//! The `lowp` command line.

mod args;
mod eval_cmd;
mod export_cmd;
mod formats_cmd;
mod levels_cmd;
mod linear_cmd;
mod matmul_cmd;
mod one_vs_rest;
mod plot;
mod plot_cmd;
mod quantize_cmd;
mod sweep_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lowp",
    version,
    about = "Low-precision training on any GPU: number formats, quantization, GEMM and convolution, and training with every tensor in the format you choose"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the named formats, or describe one format (any text, e.g. 'float(e=5,m=4)').
    Formats {
        /// A format to describe in detail.
        format: Option<String>,
    },
    /// Quantize an f32 .npy array and write the quantized values as f32 .npy.
    Quantize(quantize_cmd::Args),
    /// Multiply two f32 .npy matrices through low-precision operands and accumulator.
    Matmul(matmul_cmd::Args),
    /// Train a model with every tensor in the format its precision map gives.
    Train(Box<train_cmd::Args>),
    /// A checkpoint's test loss and accuracy, without training.
    Eval(eval_cmd::Args),
    /// Write a checkpoint's parameters as a safetensors file other tools read (f32, or the
    /// stored dtypes: F8_E4M3, F8_E5M2, F16, BF16, integer codes).
    Export(export_cmd::Args),
    /// Overlay the curves of several training runs (their --out folders) in one chart.
    Plot(plot_cmd::Args),
    /// Run a grid of trainings as one command (resumable, sharded, `--jobs` at a time),
    /// merge the results and plot them with the Pareto frontier marked.
    #[command(subcommand)]
    Sweep(sweep_cmd::Command),
    /// Train linear models (least squares, logistic regression) on low-precision data: ZipML's estimators and levels, HALP and its baselines.
    Linear(Box<linear_cmd::Args>),
    /// Print the quantization levels of an array and the variance they give.
    Levels(levels_cmd::Args),
    /// Show the GPU adapter lowp would use and what it offers.
    Info,
}

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`| head`) ends the process quietly, as
    // for any Unix tool, instead of a panic in the middle of a report.
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Mesa's window-system code complains when XDG_RUNTIME_DIR is unset; lowp opens no
    // window, so give it the temporary folder.
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: no other thread exists yet to read the environment.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Formats { format } => formats_cmd::run(format.as_deref()),
        Command::Quantize(args) => quantize_cmd::run(&args),
        Command::Matmul(args) => matmul_cmd::run(&args),
        Command::Train(args) => train_cmd::run(&args),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Export(args) => export_cmd::run(&args),
        Command::Plot(args) => plot_cmd::run(&args),
        Command::Linear(args) => linear_cmd::run(&args),
        Command::Sweep(c) => sweep_cmd::run(&c),
        Command::Levels(args) => levels_cmd::run(&args),
        Command::Info => lowp::gpu::GpuContext::new()
            .map(|ctx| println!("{}", ctx.report()))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
