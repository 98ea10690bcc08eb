//! Attention probabilities: softmax(scale · scores) over each row of keys, in one pass per row.
//!
//! candle's `softmax_last_dim` computes `exp` one element at a time with the C library, after a
//! separate tensor op for the scale; at 64 query rows over 384 keys that was 6% of a layer
//! (`d2c bench --profile`). Here the scale, max, `exp`, sum and division of a row run as
//! plain loops the compiler vectorises, with `exp` as a polynomial (Cephes' `expf`: range
//! reduction by ln 2, a degree-6 polynomial, 2^n from the exponent bits; within 2 ulp), compiled
//! per instruction set like the gemm (`super::simd`). Each row is computed on its own, the
//! same way whatever the number of rows, so batching rows never changes a row's result.

use super::simd::{self, Width};

/// Rows of `t` scores (row-major) to probabilities of softmax(scale · row).
pub fn scaled_softmax(x: &[f32], t: usize, scale: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    if t == 0 {
        return out;
    }
    // The instruction set is chosen here, on the calling thread (see `simd::with`).
    let width = simd::active().width;
    let rows = |src: &[f32], dst: &mut [f32]| run(width, src, dst, t, scale);
    // One thread below ~64K scores (a hand-off costs more than it saves).
    if x.len() < (1 << 16) {
        rows(x, &mut out);
    } else {
        use rayon::prelude::*;
        let per = t * (4096 / t).max(1);
        x.par_chunks(per).zip(out.par_chunks_mut(per)).for_each(|(s, d)| rows(s, d));
    }
    out
}

fn run(width: Width, src: &[f32], dst: &mut [f32], t: usize, scale: f32) {
    match width {
        // SAFETY: the CPU has the instruction set `active` reports.
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => unsafe { rows_avx512(src, dst, t, scale) },
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => unsafe { rows_avx2(src, dst, t, scale) },
        _ => rows(src, dst, t, scale),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn rows_avx512(src: &[f32], dst: &mut [f32], t: usize, scale: f32) {
    rows(src, dst, t, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(src: &[f32], dst: &mut [f32], t: usize, scale: f32) {
    rows(src, dst, t, scale)
}

/// Lanes of the partial max and sum (independent accumulators the compiler keeps in vectors).
const L: usize = 16;

#[inline(always)]
fn rows(src: &[f32], dst: &mut [f32], t: usize, scale: f32) {
    for (s, d) in src.chunks_exact(t).zip(dst.chunks_exact_mut(t)) {
        for (d, &s) in d.iter_mut().zip(s) {
            *d = s * scale;
        }
        let mut m = [f32::NEG_INFINITY; L];
        let mut chunks = d.chunks_exact(L);
        for c in &mut chunks {
            for l in 0..L {
                m[l] = if c[l] > m[l] { c[l] } else { m[l] };
            }
        }
        let max = chunks.remainder().iter().chain(&m).fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        for d in d.iter_mut() {
            *d = exp(*d - max);
        }
        let mut sum = [0f32; L];
        let mut chunks = d.chunks_exact(L);
        for c in &mut chunks {
            for l in 0..L {
                sum[l] += c[l];
            }
        }
        let total: f32 = sum.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
        for d in d.iter_mut() {
            *d /= total;
        }
    }
}

/// e^x for x <= 0 (what a softmax row minus its max holds); 0 below -87.3, where e^x leaves
/// the normal f32 range, and for -inf (a masked key).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by the float-add trick (vectorises, unlike `round`).
    const SHIFTER: f32 = 12_582_912.0; // 1.5 * 2^23
    let xc = x.max(-87.3);
    let n = (xc * LOG2E + SHIFTER) - SHIFTER;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5;
    let e = (p * r * r + r + 1.0) * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.3 {
        0.0
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_the_library_one() {
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 2.0 * f32::EPSILON * want, "exp({x}) = {got}, libm {want}");
            x += 0.0137;
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn rows_match_candle_softmax_on_every_path() {
        let (rows_n, t) = (37, 389);
        let mut seed = 9u64;
        let x: Vec<f32> = (0..rows_n * t)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 40.0
            })
            .collect();
        let scale = 0.125;
        let want: Vec<f32> = {
            let dev = candle_core::Device::Cpu;
            let s = (candle_core::Tensor::from_slice(&x, (rows_n, t), &dev).unwrap() * scale as f64).unwrap();
            candle_nn::ops::softmax_last_dim(&s).unwrap().flatten_all().unwrap().to_vec1().unwrap()
        };
        for s in simd::available() {
            let got = simd::with(s, || scaled_softmax(&x, t, scale));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-6 * w.max(1e-3), "{s:?} [{i}]: {g} vs {w}");
            }
            for r in got.chunks(t) {
                assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }
}
