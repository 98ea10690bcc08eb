//! The `d2c` command line. Exit codes: 0 ok, 1 policy invalid, 2 usage, I/O or model error.

mod cli;

fn main() {
    pin_thread_count();
    d2c::model::simd::narrow_candle_quantized();
    std::process::exit(cli::main());
}

/// candle 0.11 asks for its thread count on every CPU matmul, and without
/// `RAYON_NUM_THREADS` that reads `/proc/cpuinfo` each time (~25 µs: 2,304 reads in a
/// 13-step batch of four tiny decodes). Asking once and setting the variable to the same
/// answer changes nothing but the cost. Done first thing, while no other thread runs.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}
