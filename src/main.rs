//! The `d2c` command line. Exit codes: 0 ok, 1 policy invalid, 2 usage, I/O or model error.

fn main() {
    std::process::exit(d2c::cli::main());
}
