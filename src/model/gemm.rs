//! y = x·Wᵀ with f32 sums for the row counts a cached step recomputes (and the fused SwiGLU).
//!
//! A d²Cache step multiplies ~32-64 rows by every weight matrix. candle's gemm packs the
//! transposed weight into panels on every call, which at so few rows costs about as much as
//! the arithmetic (measured: 47-65 GFLOP/s at 32-64 rows against ~100 at 384). This kernel
//! reads W in the layout checkpoints store it (out x in, rows contiguous), so nothing is
//! repacked: each output is a dot product of an x row and a W row, computed in register tiles
//! (MR x rows by NR W rows) over a chunk of the inner dimension that keeps the W tile in L1,
//! while the next W chunk is prefetched.
//!
//! The kernel is written once over a lane type ([`lanes::Lanes`]) and instantiated per
//! instruction set inside a `#[target_feature]` entry point: AVX-512 (16 f32 lanes, or
//! `vdpbf16ps` on bf16 weights), AVX2 (8 lanes) and portable Rust. [`super::simd::active`]
//! picks one at run time, so every machine runs the same tiling and tail logic and the tests
//! on any of them check it. Each output element is one accumulator's sum over its own row
//! pair, whatever tile it falls in, so a row's result never depends on the other rows.
//! Threads split the W rows; a product too small to repay a thread hand-off runs on one.

pub mod lanes;

use super::simd::{self, Simd, Width};
use half::bf16;
use lanes::{Elem, Lanes, Scalar};

/// Largest register tile of any lane type (see each type's MR and NR).
const MR_MAX: usize = 4;
const NR_MAX: usize = 6;
/// One W row's chunk of the inner dimension: NR rows of 4 KB stay in L1 while every x tile
/// passes over them.
const CHUNK_BYTES: usize = 4096;
/// Multiply-adds below which one thread does the whole product (a rayon hand-off costs
/// ~10-20 µs; at ~40 GFLOP/s a thread does ~250k multiply-adds in that time).
const SERIAL_BELOW: usize = 1 << 20;

type Tile = [[f32; NR_MAX]; MR_MAX];

/// y (m x n, row-major) = x (m x k, row-major) · wᵀ, w (n x k, row-major), all f32.
pub fn xwt(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    xwt_on(simd::active(), x, w, m, n, k)
}

/// [`xwt`] on the instruction set `s` (at most what the CPU has; for benchmarks and tests).
pub fn xwt_on(s: Simd, x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let p = Product::new(x, w, m, n, k);
    match s.width {
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => p.run(entries::avx512_f32, lanes::Avx512F32::NR),
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => p.run(entries::avx2_f32, lanes::Avx2F32::NR),
        _ => p.run(columns::<Scalar<f32>>, Scalar::<f32>::NR),
    }
}

/// y (f32) = x · wᵀ for bf16 weights: x is rounded to bf16 (what `vdpbf16ps` multiplies; the
/// paths without it widen the same bf16 values, so every path computes the same products)
/// and products are summed in f32.
pub fn xwt_bf16(x: &[f32], w: &[bf16], m: usize, n: usize, k: usize) -> Vec<f32> {
    xwt_bf16_on(simd::active(), x, w, m, n, k)
}

/// [`xwt_bf16`] on the instruction set `s` (at most what the CPU has; for benchmarks and tests).
pub fn xwt_bf16_on(s: Simd, x: &[f32], w: &[bf16], m: usize, n: usize, k: usize) -> Vec<f32> {
    let xb = to_bf16(&x[..(m * k).min(x.len())], s);
    let p = Product::new(&xb, w, m, n, k);
    match s.width {
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 if s.bf16_dot => p.run(entries::avx512_bf16_dot, lanes::Avx512Bf16Dot::NR),
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => p.run(entries::avx512_bf16, lanes::Avx512Bf16::NR),
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => p.run(entries::avx2_bf16, lanes::Avx2Bf16::NR),
        _ => p.run(columns::<Scalar<bf16>>, Scalar::<bf16>::NR),
    }
}

/// `x` rounded to bf16 (to nearest, ties to even), 16 values per `vcvtneps2bf16` where the
/// CPU has AVX512-BF16 (the same values for finite normal inputs; a scalar conversion was ~5%
/// of a bf16 layer).
fn to_bf16(x: &[f32], s: Simd) -> Vec<bf16> {
    let mut out = vec![bf16::ZERO; x.len()];
    #[cfg(target_arch = "x86_64")]
    if s.bf16_dot {
        // SAFETY: the CPU has AVX512-BF16 (`s` is at most what it has).
        unsafe { entries::round_bf16(x, &mut out) };
        return out;
    }
    let _ = s;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = bf16::from_f32(v);
    }
    out
}

/// One product: inputs, shape and the output being written.
struct Product<'a, E> {
    x: &'a [E],
    w: &'a [E],
    m: usize,
    n: usize,
    k: usize,
    y: OutPtr,
    out: Vec<f32>,
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: threads write disjoint columns of the output (see `Product::run`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Columns j0..j1 of a product, every row: one instruction set's kernel.
type Columns<E> = unsafe fn(&Product<E>, usize, usize);

impl<'a, E: Elem> Product<'a, E> {
    fn new(x: &'a [E], w: &'a [E], m: usize, n: usize, k: usize) -> Self {
        assert!(x.len() >= m * k && w.len() >= n * k, "gemm: slices shorter than m*k / n*k");
        let mut out = vec![0f32; m * n];
        Product { x, w, m, n, k, y: OutPtr(out.as_mut_ptr()), out }
    }

    /// Compute y on `columns`, the W rows split across threads in whole `nr` tiles (so only
    /// the last range has a ragged edge).
    fn run(self, columns: Columns<E>, nr: usize) -> Vec<f32> {
        let (m, n, k) = (self.m, self.n, self.k);
        let threads = if m * n * k < SERIAL_BELOW { 1 } else { rayon::current_num_threads().max(1) };
        let per = n.div_ceil(nr).div_ceil(threads) * nr;
        let me = &self;
        // SAFETY: ranges [j0, j1) are disjoint across t, each call writes only the columns
        // j0..j1 of y, and y (self.out) lives until the scope ends.
        let part = move |t: usize| unsafe { columns(me, (t * per).min(n), ((t + 1) * per).min(n)) };
        if threads == 1 {
            part(0);
        } else {
            rayon::scope(|s| {
                for t in 1..threads {
                    s.spawn(move |_| part(t));
                }
                part(0);
            });
        }
        self.out
    }
}

/// The `#[target_feature]` entry points: each compiles [`columns`] (and, inlined into it,
/// the kernel and its lane type) for one instruction set.
#[cfg(target_arch = "x86_64")]
mod entries {
    use super::{columns, lanes, Product};
    use half::bf16;

    macro_rules! entry {
        ($name:ident, $lanes:ty, $e:ty, $features:literal) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $name(p: &Product<$e>, j0: usize, j1: usize) {
                columns::<$lanes>(p, j0, j1)
            }
        };
    }
    entry!(avx2_f32, lanes::Avx2F32, f32, "avx2,fma");
    entry!(avx2_bf16, lanes::Avx2Bf16, bf16, "avx2,fma");
    entry!(avx512_f32, lanes::Avx512F32, f32, "avx512f,avx512bw,avx512vl,avx2,fma");
    entry!(avx512_bf16, lanes::Avx512Bf16, bf16, "avx512f,avx512bw,avx512vl,avx2,fma");
    entry!(avx512_bf16_dot, lanes::Avx512Bf16Dot, bf16, "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma");

    /// `out` = `x` rounded to bf16, 16 values an instruction.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn round_bf16(x: &[f32], out: &mut [half::bf16]) {
        use std::arch::x86_64::*;
        let whole = x.len().min(out.len()) / 16 * 16;
        for i in (0..whole).step_by(16) {
            let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x.as_ptr().add(i)));
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, std::mem::transmute::<__m256bh, __m256i>(h));
        }
        for (o, &v) in out[whole..].iter_mut().zip(&x[whole..]) {
            *o = half::bf16::from_f32(v);
        }
    }
}

/// Columns j0..j1 of y, every row.
#[inline(always)]
unsafe fn columns<S: Lanes>(p: &Product<S::E>, j0: usize, j1: usize) {
    let (m, n, k) = (p.m, p.n, p.k);
    // Work units: an NR-row W tile times a chunk of the inner dimension, W tile-major.
    let kc_max = CHUNK_BYTES / std::mem::size_of::<S::E>();
    let chunks = k.div_ceil(kc_max);
    let units = (j1 - j0).div_ceil(S::NR) * chunks;
    let unit = |u: usize| {
        let (j, q) = (j0 + (u / chunks) * S::NR, (u % chunks) * kc_max);
        (j, q, S::NR.min(j1 - j), kc_max.min(k - q))
    };
    let x_tiles = m.div_ceil(S::MR);
    for u in 0..units {
        let (j, q, nr, kc) = unit(u);
        // The next unit's W chunk, fetched a slice per x tile while this one computes: with
        // few x rows each W chunk serves only a few tiles, and a chunk fetched on demand
        // leaves the FMAs waiting on memory (+4-9% at 32-64 rows with W out of cache;
        // fetching 2, 4 or 8 units ahead measured the same or worse).
        let ahead = (u + 1 < units).then(|| {
            let (jn, qn, nrn, kcn) = unit(u + 1);
            Ahead::new(p.w.as_ptr().add(jn * k + qn), k, nrn, kcn, x_tiles)
        });
        let mut i = 0;
        while i < m {
            if let Some(a) = &ahead {
                a.fetch(i / S::MR);
            }
            let mr = S::MR.min(m - i);
            let mut acc: Tile = [[0.0; NR_MAX]; MR_MAX];
            tile::<S>(mr, nr, p.x.as_ptr().add(i * k + q), p.w.as_ptr().add(j * k + q), k, kc, &mut acc);
            for (r, row) in acc.iter().enumerate().take(mr) {
                let dst = p.y.0.add((i + r) * n + j);
                for (c, v) in row.iter().enumerate().take(nr) {
                    *dst.add(c) += *v;
                }
            }
            i += mr;
        }
    }
}

/// Cache lines of a W chunk (`rows` rows `ld` elements apart, `len` elements each) to
/// prefetch, split evenly over `parts` calls of [`Ahead::fetch`].
struct Ahead<E> {
    base: *const E,
    ld: usize,
    lines_per_row: usize,
    per_line: usize,
    total: usize,
    per: usize,
}

impl<E> Ahead<E> {
    fn new(base: *const E, ld: usize, rows: usize, len: usize, parts: usize) -> Self {
        let per_line = 64 / std::mem::size_of::<E>();
        let lines_per_row = len.div_ceil(per_line);
        let total = rows * lines_per_row;
        Ahead { base, ld, lines_per_row, per_line, total, per: total.div_ceil(parts.max(1)) }
    }

    /// Prefetch the `part`-th slice of the chunk's lines.
    #[inline(always)]
    unsafe fn fetch(&self, part: usize) {
        #[cfg(target_arch = "x86_64")]
        for l in (part * self.per).min(self.total)..((part + 1) * self.per).min(self.total) {
            let (r, c) = (l / self.lines_per_row, l % self.lines_per_row);
            let ptr = self.base.add(r * self.ld + c * self.per_line) as *const i8;
            std::arch::x86_64::_mm_prefetch(ptr, std::arch::x86_64::_MM_HINT_T0);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (part, self.total);
    }
}

/// One mr x nr tile over `kc` inner elements (rows `ld` apart) into `acc`.
#[inline(always)]
unsafe fn tile<S: Lanes>(mr: usize, nr: usize, x: *const S::E, w: *const S::E, ld: usize, kc: usize, acc: &mut Tile) {
    macro_rules! go {
        ($($m:literal: $($n:literal)*);*) => {
            match (mr, nr) {
                $($(($m, $n) => kernel::<S, $m, $n>(x, w, ld, kc, acc),)*)*
                _ => unreachable!("tile sizes are at most MR_MAX x NR_MAX"),
            }
        };
    }
    go!(1: 1 2 3 4 5 6; 2: 1 2 3 4 5 6; 3: 1 2 3 4 5 6; 4: 1 2 3 4 5 6)
}

/// The register tile: M x rows against N W rows, one accumulator per pair, summed at the end
/// (elements past the last whole `STEP` are added one by one).
#[inline(always)]
unsafe fn kernel<S: Lanes, const M: usize, const N: usize>(x: *const S::E, w: *const S::E, ld: usize, kc: usize, acc: &mut Tile) {
    let mut s = [[S::zero(); N]; M];
    let mut p = 0;
    while p + S::STEP <= kc {
        let mut xv = [S::load(x.add(p)); M];
        for (i, v) in xv.iter_mut().enumerate().skip(1) {
            *v = S::load(x.add(i * ld + p));
        }
        for j in 0..N {
            let wv = S::load(w.add(j * ld + p));
            for (row, xi) in s.iter_mut().zip(&xv) {
                row[j] = S::madd(row[j], *xi, wv);
            }
        }
        p += S::STEP;
    }
    for i in 0..M {
        for j in 0..N {
            let mut t = S::sum(s[i][j]);
            for q in p..kc {
                t += S::mul(*x.add(i * ld + q), *w.add(j * ld + q));
            }
            acc[i][j] = t;
        }
    }
}

/// SwiGLU on the fused gate/up output: `gu` holds rows of [gate (ff) | up (ff)]; returns
/// rows of silu(gate) * up. One pass instead of candle's three (silu, two narrows, a multiply,
/// each a temporary); silu is candle's own formula, so results are bit-identical.
pub fn swiglu(gu: &[f32], ff: usize) -> Vec<f32> {
    let rows = gu.len() / (2 * ff).max(1);
    let mut out = vec![0f32; rows * ff];
    let row = |(o, g): (&mut [f32], &[f32])| {
        let (gate, up) = g.split_at(ff);
        for ((y, &a), &b) in o.iter_mut().zip(gate).zip(up) {
            *y = a / (1.0 + (-a).exp()) * b;
        }
    };
    if rows * ff < (1 << 16) {
        out.chunks_mut(ff).zip(gu.chunks(2 * ff)).for_each(row);
    } else {
        use rayon::prelude::*;
        out.par_chunks_mut(ff).zip(gu.par_chunks(2 * ff)).for_each(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum::<f64>() as f32;
            }
        }
        y
    }

    fn paths() -> Vec<Simd> {
        simd::available()
    }

    fn rng(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        }
    }

    const SHAPES: &[(usize, usize, usize)] = &[(1, 1, 1), (2, 5, 7), (3, 4, 8), (7, 9, 1030), (64, 67, 2100), (5, 513, 64), (40, 300, 1024), (9, 13, 2083)];

    #[test]
    fn matches_a_naive_product_on_ragged_shapes_on_every_path() {
        let mut r = rng(1);
        for &(m, n, k) in SHAPES {
            let x: Vec<f32> = (0..m * k).map(|_| r()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| r()).collect();
            let want = naive(&x, &w, m, n, k);
            for s in paths() {
                let got = xwt_on(s, &x, &w, m, n, k);
                for (idx, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-5 * (k as f32).sqrt().max(1.0), "{s:?} ({m},{n},{k}) at {idx}: {g} vs {e}");
                }
            }
        }
    }

    #[test]
    fn bf16_weights_match_the_product_of_the_rounded_values_on_every_path() {
        let mut r = rng(2);
        for &(m, n, k) in SHAPES {
            let x: Vec<f32> = (0..m * k).map(|_| r()).collect();
            let w: Vec<bf16> = (0..n * k).map(|_| bf16::from_f32(r())).collect();
            // What every path multiplies: x and W as bf16, products summed exactly.
            let xr: Vec<f32> = x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
            let wr: Vec<f32> = w.iter().map(|v| v.to_f32()).collect();
            let want = naive(&xr, &wr, m, n, k);
            for s in paths() {
                let got = xwt_bf16_on(s, &x, &w, m, n, k);
                for (idx, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-5 * (k as f32).sqrt().max(1.0), "{s:?} ({m},{n},{k}) at {idx}: {g} vs {e}");
                }
            }
        }
    }

    #[test]
    fn rounding_to_bf16_is_the_same_on_every_path() {
        let mut r = rng(5);
        let x: Vec<f32> = (0..1003).map(|i| r() * [1.0, 1e-30, 3e30, 7.0][i % 4]).chain([0.0, -0.0, 1.0, f32::MAX]).collect();
        let want: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        for s in paths() {
            assert_eq!(to_bf16(&x, s), want, "{s:?}");
        }
    }

    #[test]
    fn a_row_gets_the_same_bits_alone_as_in_any_tile() {
        let (m, n, k) = (11, 14, 1500);
        let mut r = rng(3);
        let x: Vec<f32> = (0..m * k).map(|_| r()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| r()).collect();
        for s in paths() {
            let all = xwt_on(s, &x, &w, m, n, k);
            for i in 0..m {
                let one = xwt_on(s, &x[i * k..(i + 1) * k], &w, 1, n, k);
                assert_eq!(one, all[i * n..(i + 1) * n], "{s:?} row {i}");
            }
        }
    }

    #[test]
    fn swiglu_is_silu_of_gate_times_up() {
        let mut r = rng(4);
        let gu: Vec<f32> = (0..6 * 10).map(|_| r() * 8.0).collect();
        let act = swiglu(&gu, 5);
        for (i, y) in act.iter().enumerate() {
            let (g, u) = (gu[(i / 5) * 10 + i % 5], gu[(i / 5) * 10 + 5 + i % 5]);
            assert_eq!(*y, g / (1.0 + (-g).exp()) * u);
        }
    }
}
