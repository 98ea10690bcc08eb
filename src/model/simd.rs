//! Which SIMD instruction set d2c's own kernels use: the widest the CPU has, detected once at
//! run time, or a narrower one named by `D2C_SIMD` for comparisons on one machine.
//!
//! The kernels ([`super::gemm`]) are written once over a lane type; this module only decides
//! which instantiation runs. candle's dense matmul (the `gemm` crate) detects on its own: with
//! the `avx512` cargo feature (default) it uses AVX-512F where the CPU has it, and has no
//! run-time switch, so `D2C_SIMD` does not narrow it; candle's quantized kernels follow
//! `D2C_SIMD=avx2|scalar` through their own switch ([`narrow_candle_quantized`]). [`describe`]
//! names all three.

use std::sync::OnceLock;

/// The environment variable that narrows the own kernels: `avx512`, `avx512f` (AVX-512 without
/// the BF16 dot product), `avx2` or `scalar`. `avx2` and `scalar` also move candle's quantized
/// kernels to their AVX2 tier (see `main.rs`).
pub const ENV: &str = "D2C_SIMD";

/// Vector width the kernels run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Width {
    /// Portable Rust the compiler vectorises for the build target (any CPU).
    Scalar,
    /// 256-bit AVX2 + FMA.
    Avx2,
    /// 512-bit AVX-512F (+ BW, VL).
    Avx512,
}

/// What the own kernels may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simd {
    pub width: Width,
    /// AVX512-BF16 (`vdpbf16ps`): bf16 pairs multiplied and summed into f32.
    pub bf16_dot: bool,
}

thread_local! {
    /// A narrower set for calls made on this thread inside [`with`].
    static SCOPED: std::cell::Cell<Option<Simd>> = const { std::cell::Cell::new(None) };
}

/// The instruction set in use: detected once, narrowed by `D2C_SIMD` when it names a valid,
/// narrower set (an invalid value is reported by [`check_env`] and otherwise ignored), and on
/// this thread by [`with`].
pub fn active() -> Simd {
    static ACTIVE: OnceLock<Simd> = OnceLock::new();
    let process = *ACTIVE.get_or_init(|| {
        let cpu = detected();
        requested().map_or(cpu, |asked| narrow(cpu, asked))
    });
    SCOPED.with(|s| s.get()).map_or(process, |asked| narrow(process, asked))
}

/// Run `f` with the kernels it calls on this thread limited to `s` (never wider than the
/// process's set): how the tests check every path of one machine in one process. The kernels
/// pick their path on the calling thread before they hand work to other threads.
pub fn with<R>(s: Simd, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Simd>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|c| c.replace(Some(s))));
    f()
}

/// Every set this CPU runs, narrowest first: portable, AVX2, AVX-512F, AVX-512 with its dot
/// products (those the CPU has).
pub fn available() -> Vec<Simd> {
    let cpu = detected();
    let plain = |width| Simd { width, bf16_dot: false };
    let mut all: Vec<Simd> = [Width::Scalar, Width::Avx2, Width::Avx512].into_iter().filter(|w| *w <= cpu.width).map(plain).collect();
    if cpu.bf16_dot {
        all.push(cpu);
    }
    all
}

/// What this CPU supports.
pub fn detected() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
        let width = if avx512 {
            Width::Avx512
        } else if avx2 {
            Width::Avx2
        } else {
            Width::Scalar
        };
        Simd { width, bf16_dot: avx512 && has!("avx512bf16") }
    }
    #[cfg(not(target_arch = "x86_64"))]
    Simd { width: Width::Scalar, bf16_dot: false }
}

/// A `D2C_SIMD` value as the most it allows.
fn parse(value: &str) -> Result<Simd, String> {
    let (width, dots) = match value.trim().to_ascii_lowercase().as_str() {
        "avx512" => (Width::Avx512, true),
        "avx512f" => (Width::Avx512, false),
        "avx2" => (Width::Avx2, false),
        "scalar" => (Width::Scalar, false),
        other => return Err(format!("{ENV}={other}: not an instruction set (avx512, avx512f, avx2, scalar)")),
    };
    Ok(Simd { width, bf16_dot: dots })
}

/// `cpu` limited to what `asked` allows (never wider than the CPU).
fn narrow(cpu: Simd, asked: Simd) -> Simd {
    Simd { width: cpu.width.min(asked.width), bf16_dot: cpu.bf16_dot && asked.bf16_dot }
}

/// The most `D2C_SIMD` allows, when it is set to a valid value.
fn requested() -> Option<Simd> {
    std::env::var(ENV).ok().and_then(|v| parse(&v).ok())
}

/// Make `D2C_SIMD=avx2` (or `scalar`) narrow candle's quantized kernels too, through the
/// switch candle reads for that (`MISTRALRS_FORCE_AVX2=1`: its AVX2 tier, no VNNI). Call it
/// first thing in `main`, while no other thread runs (it sets an environment variable).
pub fn narrow_candle_quantized() {
    if requested().is_some_and(|s| s.width < Width::Avx512) && std::env::var_os("MISTRALRS_FORCE_AVX2").is_none() {
        std::env::set_var("MISTRALRS_FORCE_AVX2", "1");
    }
}

/// `Err` naming the variable and its value when `D2C_SIMD` is set to something unknown.
pub fn check_env() -> Result<(), String> {
    match std::env::var(ENV) {
        Ok(v) => parse(&v).map(|_| ()),
        Err(_) => Ok(()),
    }
}

/// One line for `--version` and run summaries, e.g. `own avx512 + bf16 dot; candle gemm
/// avx512, quantized avx512-vnni`.
pub fn describe() -> String {
    let s = active();
    let mut own = match s.width {
        Width::Avx512 => "own avx512".to_string(),
        Width::Avx2 => "own avx2".to_string(),
        Width::Scalar => "own scalar".to_string(),
    };
    if s.bf16_dot {
        own.push_str(" + bf16 dot");
    }
    if detected() != s {
        own.push_str(&format!(" (narrowed by {ENV})"));
    }
    format!("{own}; candle gemm {}, quantized {}", candle_gemm(), candle_quantized())
}

/// The tier candle's quantized matmul picks (its own detection in `repack_x86::level`, which
/// `MISTRALRS_FORCE_AVX2=1` caps at AVX2), decided once like candle's: it is asked on every
/// q8_0 projection.
pub fn candle_quantized() -> &'static str {
    static TIER: OnceLock<&'static str> = OnceLock::new();
    TIER.get_or_init(candle_quantized_tier)
}

fn candle_quantized_tier() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let forced = std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1");
        if !forced && has!("avx512f") && has!("avx512vnni") {
            "avx512-vnni"
        } else if !forced && has!("avxvnni") && has!("avx2") {
            "avx-vnni"
        } else if has!("avx2") && has!("fma") {
            "avx2"
        } else {
            "scalar"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    "portable"
}

/// The width candle's dense matmul picks on this CPU in this build.
fn candle_gemm() -> &'static str {
    let cpu = detected();
    if cfg!(feature = "avx512") && cpu.width == Width::Avx512 {
        "avx512"
    } else if cpu.width >= Width::Avx2 {
        "avx2"
    } else {
        "scalar"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_narrows_but_never_widens() {
        let cpu = Simd { width: Width::Avx2, bf16_dot: false };
        let asked = parse("avx512").unwrap_or(cpu);
        assert_eq!(narrow(cpu, asked), cpu);
        let wide = Simd { width: Width::Avx512, bf16_dot: true };
        assert_eq!(narrow(wide, parse("avx512f").unwrap_or(wide)), Simd { width: Width::Avx512, bf16_dot: false });
        assert_eq!(narrow(wide, parse(" AVX2 ").unwrap_or(wide)).width, Width::Avx2);
        assert!(parse("avx1024").is_err_and(|e| e.contains("D2C_SIMD=avx1024")));
    }

    #[test]
    fn with_narrows_this_thread_for_the_closure_only() {
        let before = active();
        let scalar = Simd { width: Width::Scalar, bf16_dot: false };
        let inner = with(scalar, || (active(), std::thread::spawn(active).join().ok()));
        assert_eq!(inner.0, scalar);
        assert_eq!(inner.1, Some(before), "another thread keeps the process's set");
        assert_eq!(active(), before);
        assert_eq!(available().first(), Some(&scalar));
        assert!(available().iter().all(|s| s.width <= detected().width));
    }
}
