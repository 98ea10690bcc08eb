//! One register's worth of a dot product, for each instruction set and element type the own
//! gemm runs on. The kernel ([`super::tile`]) is written once over [`Lanes`]; an
//! implementation says how to load a register of elements, multiply-add two of them into an
//! f32 accumulator, and sum an accumulator's lanes, plus the register tile its register file
//! holds. Everything is `#[inline(always)]` so that it compiles into the `#[target_feature]`
//! entry point of its instruction set (see `super::entries`).

use half::bf16;

/// A dot-product lane type: elements `E` are read `STEP` at a time into `V` and accumulated in
/// `A` (f32 lanes).
pub trait Lanes {
    type E: Elem;
    type V: Copy;
    type A: Copy;
    /// Elements per load.
    const STEP: usize;
    /// Register tile: rows of x by rows of W.
    const MR: usize;
    const NR: usize;
    /// # Safety
    /// Every method runs only where the CPU has the lane type's instruction set (the entry
    /// points in `super::entries` are compiled for it and chosen by detection).
    unsafe fn zero() -> Self::A;
    /// # Safety
    /// As [`Lanes::zero`], and `p` points at `STEP` readable elements.
    unsafe fn load(p: *const Self::E) -> Self::V;
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn madd(acc: Self::A, x: Self::V, w: Self::V) -> Self::A;
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn sum(acc: Self::A) -> f32;
    /// One product in f32, for the tail of a row shorter than `STEP`.
    #[inline(always)]
    fn mul(x: Self::E, w: Self::E) -> f32 {
        x.f32() * w.f32()
    }
}

/// An element the kernels read, as f32.
pub trait Elem: Copy + Send + Sync {
    fn f32(self) -> f32;
}

impl Elem for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }
}

impl Elem for bf16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

/// Any target: eight f32 partial sums in plain Rust, which the compiler vectorises.
pub struct Scalar<E>(std::marker::PhantomData<E>);

impl<E: Elem> Lanes for Scalar<E> {
    type E = E;
    type V = [f32; 8];
    type A = [f32; 8];
    const STEP: usize = 8;
    const MR: usize = 3;
    const NR: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> [f32; 8] {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const E) -> [f32; 8] {
        std::array::from_fn(|l| (*p.add(l)).f32())
    }
    #[inline(always)]
    unsafe fn madd(mut acc: [f32; 8], x: [f32; 8], w: [f32; 8]) -> [f32; 8] {
        for l in 0..8 {
            acc[l] += x[l] * w[l];
        }
        acc
    }
    #[inline(always)]
    unsafe fn sum(acc: [f32; 8]) -> f32 {
        acc.iter().sum()
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::*;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{bf16, Lanes};
    use std::arch::x86_64::*;

    /// AVX2 + FMA, f32: 8 lanes; 3 x 4 accumulators + 3 x + 1 W register of the 16.
    pub struct Avx2F32;
    /// AVX2 + FMA, bf16 widened to f32 on load (a shift: bf16 is the top half of an f32).
    pub struct Avx2Bf16;
    /// AVX-512F, f32: 16 lanes; 4 x 6 accumulators + 4 x + 1 W register of the 32, so the
    /// 10 loads of a step hide under its 24 FMAs.
    pub struct Avx512F32;
    /// AVX-512F, bf16 widened to f32 on load (CPUs without AVX512-BF16).
    pub struct Avx512Bf16;
    /// AVX512-BF16: `vdpbf16ps` multiplies 32 bf16 pairs and adds each adjacent pair of
    /// products into one of 16 f32 lanes, twice the multiply-adds of an f32 FMA from half the
    /// bytes.
    pub struct Avx512Bf16Dot;

    macro_rules! f32_sums {
        (m256) => {
            #[inline(always)]
            unsafe fn zero() -> __m256 {
                _mm256_setzero_ps()
            }
            #[inline(always)]
            unsafe fn sum(v: __m256) -> f32 {
                let lo = _mm256_castps256_ps128(v);
                let hi = _mm256_extractf128_ps(v, 1);
                let q = _mm_add_ps(lo, hi);
                let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
                _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps(d, d, 1)))
            }
        };
        (m512) => {
            #[inline(always)]
            unsafe fn zero() -> __m512 {
                _mm512_setzero_ps()
            }
            #[inline(always)]
            unsafe fn sum(v: __m512) -> f32 {
                _mm512_reduce_add_ps(v)
            }
        };
    }

    /// An FMA into f32 lanes, for lane types whose loads give f32 lanes.
    macro_rules! fma_madd {
        (m256) => {
            #[inline(always)]
            unsafe fn madd(acc: __m256, x: __m256, w: __m256) -> __m256 {
                _mm256_fmadd_ps(x, w, acc)
            }
        };
        (m512) => {
            #[inline(always)]
            unsafe fn madd(acc: __m512, x: __m512, w: __m512) -> __m512 {
                _mm512_fmadd_ps(x, w, acc)
            }
        };
    }

    impl Lanes for Avx2F32 {
        type E = f32;
        type V = __m256;
        type A = __m256;
        const STEP: usize = 8;
        const MR: usize = 3;
        const NR: usize = 4;
        f32_sums!(m256);
        fma_madd!(m256);
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
    }

    impl Lanes for Avx2Bf16 {
        type E = bf16;
        type V = __m256;
        type A = __m256;
        const STEP: usize = 8;
        const MR: usize = 3;
        const NR: usize = 4;
        f32_sums!(m256);
        fma_madd!(m256);
        #[inline(always)]
        unsafe fn load(p: *const bf16) -> __m256 {
            let h = _mm_loadu_si128(p as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        }
    }

    impl Lanes for Avx512F32 {
        type E = f32;
        type V = __m512;
        type A = __m512;
        const STEP: usize = 16;
        const MR: usize = 4;
        const NR: usize = 6;
        f32_sums!(m512);
        fma_madd!(m512);
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
    }

    impl Lanes for Avx512Bf16 {
        type E = bf16;
        type V = __m512;
        type A = __m512;
        const STEP: usize = 16;
        const MR: usize = 4;
        const NR: usize = 6;
        f32_sums!(m512);
        fma_madd!(m512);
        #[inline(always)]
        unsafe fn load(p: *const bf16) -> __m512 {
            let h = _mm256_loadu_si256(p as *const __m256i);
            _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
        }
    }

    impl Lanes for Avx512Bf16Dot {
        type E = bf16;
        type V = __m512bh;
        type A = __m512;
        const STEP: usize = 32;
        const MR: usize = 4;
        const NR: usize = 6;
        f32_sums!(m512);
        #[inline(always)]
        unsafe fn load(p: *const bf16) -> __m512bh {
            // SAFETY: __m512bh is 32 bf16 in a 512-bit register, the bits bf16 stores.
            std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p as *const __m512i))
        }
        #[inline(always)]
        unsafe fn madd(acc: __m512, x: __m512bh, w: __m512bh) -> __m512 {
            _mm512_dpbf16_ps(acc, x, w)
        }
    }
}
