//! y = x·Wᵀ in f32 for the row counts a cached step recomputes (and the fused SwiGLU).
//!
//! A d²Cache step multiplies ~32-64 rows by every weight matrix. candle's gemm packs the
//! transposed weight into panels on every call, which at so few rows costs about as much as
//! the arithmetic (measured: 47-65 GFLOP/s at 32-64 rows against ~100 at 384). This kernel
//! reads W in the layout checkpoints store it (out x in, rows contiguous), so nothing is
//! repacked: each output is a dot product of an x row and a W row, computed in register tiles
//! of 3 x rows by 4 W rows over a chunk of the inner dimension that keeps the W tile in L1,
//! while the next W chunk is prefetched.
//! Threads split the W rows; a product too small to repay a thread hand-off runs on one.

/// Rows of x per register tile.
const MR: usize = 3;
/// Rows of W per register tile.
const NR: usize = 4;
/// Inner-dimension chunk: NR W rows of KC floats (16 KB) stay in L1 while every x tile
/// passes over them.
const KC: usize = 1024;
/// Multiply-adds below which one thread does the whole product (a rayon hand-off costs
/// ~10-20 µs; at ~40 GFLOP/s a thread does ~250k multiply-adds in that time).
const SERIAL_BELOW: usize = 1 << 20;

/// y (m x n, row-major) = x (m x k, row-major) · wᵀ, w (n x k, row-major).
pub fn xwt(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    assert!(x.len() >= m * k && w.len() >= n * k, "gemm::xwt: slices shorter than m*k / n*k");
    let mut y = vec![0f32; m * n];
    let out = OutPtr(y.as_mut_ptr());
    let threads = if m * n * k < SERIAL_BELOW { 1 } else { rayon::current_num_threads().max(1) };
    // Whole NR tiles per thread, so only the last range has a ragged edge.
    let tiles = n.div_ceil(NR);
    let per = tiles.div_ceil(threads);
    let run = |t: usize| {
        let (j0, j1) = ((t * per * NR).min(n), ((t + 1) * per * NR).min(n));
        // SAFETY: ranges [j0, j1) are disjoint across t, and each call writes only the
        // columns j0..j1 of y, which lives until the scope ends.
        unsafe { columns(x, w, m, n, k, j0, j1, out) }
    };
    if threads == 1 {
        run(0);
    } else {
        rayon::scope(|s| {
            for t in 1..threads {
                s.spawn(move |_| run(t));
            }
            run(0);
        });
    }
    y
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: threads write disjoint columns of the output (see `xwt`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Columns j0..j1 of y, every row.
unsafe fn columns(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, j0: usize, j1: usize, y: OutPtr) {
    // Work units: an NR-row W tile times a KC chunk of the inner dimension, W tile-major.
    let chunks = k.div_ceil(KC);
    let units = (j1 - j0).div_ceil(NR) * chunks;
    let unit = |u: usize| {
        let (j, p) = (j0 + (u / chunks) * NR, (u % chunks) * KC);
        (j, p, NR.min(j1 - j), KC.min(k - p))
    };
    for u in 0..units {
        let (j, p, nr, kc) = unit(u);
        // The next unit's W chunk, fetched a slice per x tile while this one computes: with
        // few x rows each W chunk serves only a few tiles, and a chunk fetched on demand
        // leaves the FMAs waiting on memory (+4-9% at 32-64 rows with W out of cache;
        // fetching 2, 4 or 8 units ahead measured the same or worse).
        let ahead = (u + 1 < units).then(|| {
            let (jn, pn, nrn, kcn) = unit(u + 1);
            Ahead::new(w, k, jn, pn, nrn, kcn, m.div_ceil(MR))
        });
        let mut i = 0;
        while i < m {
            if let Some(a) = &ahead {
                a.fetch(i / MR);
            }
            let mr = MR.min(m - i);
            let xs = x.as_ptr().add(i * k + p);
            let ws = w.as_ptr().add(j * k + p);
            let mut acc = [[0f32; NR]; MR];
            tile(mr, nr, xs, ws, k, kc, &mut acc);
            for (r, row) in acc.iter().enumerate().take(mr) {
                let dst = y.0.add((i + r) * n + j);
                for (c, v) in row.iter().enumerate().take(nr) {
                    *dst.add(c) += *v;
                }
            }
            i += mr;
        }
    }
}

/// Cache lines of a W chunk (rows jn.., columns pn..pn+kc) to prefetch, split evenly over
/// `parts` calls of [`Ahead::fetch`].
struct Ahead {
    base: *const f32,
    k: usize,
    lines_per_row: usize,
    total: usize,
    per: usize,
}

impl Ahead {
    unsafe fn new(w: &[f32], k: usize, jn: usize, pn: usize, nr: usize, kc: usize, parts: usize) -> Self {
        let lines_per_row = kc.div_ceil(16);
        let total = nr * lines_per_row;
        Ahead { base: w.as_ptr().add(jn * k + pn), k, lines_per_row, total, per: total.div_ceil(parts.max(1)) }
    }

    /// Prefetch the `part`-th slice of the chunk's lines.
    #[inline]
    unsafe fn fetch(&self, part: usize) {
        #[cfg(target_arch = "x86_64")]
        for l in (part * self.per).min(self.total)..((part + 1) * self.per).min(self.total) {
            let (r, c) = (l / self.lines_per_row, l % self.lines_per_row);
            let ptr = self.base.add(r * self.k + c * 16) as *const i8;
            std::arch::x86_64::_mm_prefetch(ptr, std::arch::x86_64::_MM_HINT_T0);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (part, self.total);
    }
}

/// One mr x nr tile over `kc` inner elements (rows `ld` apart) into `acc`.
#[inline]
unsafe fn tile(mr: usize, nr: usize, x: *const f32, w: *const f32, ld: usize, kc: usize, acc: &mut [[f32; NR]; MR]) {
    macro_rules! go {
        ($($m:literal, $n:literal);*) => {
            match (mr, nr) {
                $(($m, $n) => kernel::<$m, $n>(x, w, ld, kc, acc),)*
                _ => unreachable!("tile sizes are at most MR x NR"),
            }
        };
    }
    go!(3, 4; 3, 3; 3, 2; 3, 1; 2, 4; 2, 3; 2, 2; 2, 1; 1, 4; 1, 3; 1, 2; 1, 1)
}

#[inline]
unsafe fn kernel<const M: usize, const N: usize>(x: *const f32, w: *const f32, ld: usize, kc: usize, acc: &mut [[f32; NR]; MR]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return avx2::kernel::<M, N>(x, w, ld, kc, acc);
        }
    }
    portable::<M, N>(x, w, ld, kc, acc)
}

/// Any target: eight-wide partial sums the compiler vectorises.
unsafe fn portable<const M: usize, const N: usize>(x: *const f32, w: *const f32, ld: usize, kc: usize, acc: &mut [[f32; NR]; MR]) {
    for i in 0..M {
        for j in 0..N {
            let xr = std::slice::from_raw_parts(x.add(i * ld), kc);
            let wr = std::slice::from_raw_parts(w.add(j * ld), kc);
            let mut lanes = [0f32; 8];
            let mut xc = xr.chunks_exact(8);
            let mut wc = wr.chunks_exact(8);
            for (a, b) in (&mut xc).zip(&mut wc) {
                for l in 0..8 {
                    lanes[l] += a[l] * b[l];
                }
            }
            let tail: f32 = xc.remainder().iter().zip(wc.remainder()).map(|(a, b)| a * b).sum();
            acc[i][j] = lanes.iter().sum::<f32>() + tail;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel<const M: usize, const N: usize>(x: *const f32, w: *const f32, ld: usize, kc: usize, acc: &mut [[f32; NR]; MR]) {
        let mut s = [[_mm256_setzero_ps(); N]; M];
        let mut p = 0;
        while p + 8 <= kc {
            let mut xv = [_mm256_setzero_ps(); M];
            for (i, v) in xv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(x.add(i * ld + p));
            }
            for j in 0..N {
                let wv = _mm256_loadu_ps(w.add(j * ld + p));
                for i in 0..M {
                    s[i][j] = _mm256_fmadd_ps(xv[i], wv, s[i][j]);
                }
            }
            p += 8;
        }
        for i in 0..M {
            for j in 0..N {
                let mut t = hsum(s[i][j]);
                for q in p..kc {
                    t += *x.add(i * ld + q) * *w.add(j * ld + q);
                }
                acc[i][j] = t;
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let q = _mm_add_ps(lo, hi);
        let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let s = _mm_add_ss(d, _mm_shuffle_ps(d, d, 1));
        _mm_cvtss_f32(s)
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

    #[test]
    fn matches_a_naive_product_on_ragged_shapes() {
        let mut seed = 1u64;
        let mut r = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let gu: Vec<f32> = (0..6 * 10).map(|_| r() * 8.0).collect();
        let act = swiglu(&gu, 5);
        for (i, y) in act.iter().enumerate() {
            let (g, u) = (gu[(i / 5) * 10 + i % 5], gu[(i / 5) * 10 + 5 + i % 5]);
            assert_eq!(*y, g / (1.0 + (-g).exp()) * u);
        }
        for &(m, n, k) in &[(1, 1, 1), (2, 5, 7), (3, 4, 8), (7, 9, 1030), (64, 67, 2100), (5, 513, 64), (40, 300, 1024)] {
            let x: Vec<f32> = (0..m * k).map(|_| r()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| r()).collect();
            let (got, want) = (xwt(&x, &w, m, n, k), naive(&x, &w, m, n, k));
            for (idx, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!((g - e).abs() <= 1e-5 * (k as f32).sqrt().max(1.0), "({m},{n},{k}) at {idx}: {g} vs {e}");
            }
        }
    }
}
