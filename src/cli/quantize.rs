//! `d2c quantize IN_DIR --dtype q4_k --out FILE.gguf`: a safetensors checkpoint folder as one
//! GGUF file with llama.cpp's tensor names and metadata, made once and loaded in seconds.

use super::{CliResult, Dtype};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// A LLaDA or Dream checkpoint folder.
    input: PathBuf,
    /// Storage of the linear weights (norms and biases stay f32; the LM head of 4-bit types is q8_0).
    #[arg(long, value_enum, default_value_t = Dtype::Q8_0)]
    dtype: Dtype,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: QuantizeArgs) -> CliResult {
    let t0 = std::time::Instant::now();
    match d2c::model::gguf::write(&a.input, &a.out, a.dtype.weight_type()) {
        Ok(n) => {
            let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
            println!(
                "wrote {} ({n} tensors, {}, {}) in {:.1}s",
                a.out.display(),
                a.dtype.name(),
                d2c::model::linear::fmt_bytes(size),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => {
            // Never leave half a file behind.
            let _ = std::fs::remove_file(&a.out);
            Err(e.into())
        }
    }
}
