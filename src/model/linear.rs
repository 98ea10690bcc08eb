//! How weights are stored: dense (f32, bf16, f16) or in GGML's quantized block formats
//! (q8_0, q4_0, q4_k) through candle's quantized tensors, and the two things the network
//! does with them: project rows ([`Proj`]) and look up embedding rows ([`Embed`]).
//!
//! Quantized weights are the llama.cpp way of fitting an 8B model in memory. candle's
//! quantized matmul (activations quantized to q8 blocks, integer dot products) wins at a few
//! rows; at hundreds of rows a dense gemm is faster, so [`Proj`] dequantizes the weight for
//! calls with many rows (a full forward) and uses the quantized kernel for the few rows a
//! cached step recomputes.

use crate::error::{Error, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Storage, Tensor};
use std::sync::Arc;

/// The storage type of a checkpoint's linear weights as d2c holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    Dense(DType),
    Quant(GgmlDType),
}

impl WeightType {
    /// Parse `f32`, `bf16`, `f16`, `q8_0`, `q4_0`, `q4_k`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "f32" => WeightType::Dense(DType::F32),
            "bf16" => WeightType::Dense(DType::BF16),
            "f16" => WeightType::Dense(DType::F16),
            "q8_0" => WeightType::Quant(GgmlDType::Q8_0),
            "q4_0" => WeightType::Quant(GgmlDType::Q4_0),
            "q4_k" => WeightType::Quant(GgmlDType::Q4K),
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            WeightType::Dense(DType::BF16) => "bf16",
            WeightType::Dense(DType::F16) => "f16",
            WeightType::Dense(_) => "f32",
            WeightType::Quant(GgmlDType::Q8_0) => "q8_0",
            WeightType::Quant(GgmlDType::Q4_0) => "q4_0",
            WeightType::Quant(GgmlDType::Q4K) => "q4_k",
            WeightType::Quant(GgmlDType::Q6K) => "q6_k",
            WeightType::Quant(GgmlDType::F32) => "f32",
            WeightType::Quant(GgmlDType::F16) => "f16",
            WeightType::Quant(GgmlDType::BF16) => "bf16",
            WeightType::Quant(_) => "quantized",
        }
    }

    /// The dtype activations (and the K/V store) use with these weights on `device`. bf16
    /// weights on the CPU keep f32 activations: the own kernel multiplies them as bf16
    /// ([`super::gemm::xwt_bf16`]) and every other op runs at f32 speed and precision.
    pub fn activations(&self, device: &Device) -> DType {
        match self {
            WeightType::Dense(DType::BF16) if device.is_cpu() => DType::F32,
            WeightType::Dense(d) => *d,
            WeightType::Quant(_) => DType::F32,
        }
    }

    /// The dtype tensors are read in before they are stored as `self`.
    pub fn load_dtype(&self) -> DType {
        match self {
            WeightType::Dense(d) => *d,
            WeightType::Quant(_) => DType::F32,
        }
    }

    /// Bytes per weight, for memory estimates.
    pub fn bytes_per_weight(&self) -> f64 {
        match self {
            WeightType::Dense(d) => d.size_in_bytes() as f64,
            WeightType::Quant(q) => q.type_size() as f64 / q.block_size() as f64,
        }
    }

    /// What the LM head is stored as: llama.cpp keeps the output matrix at higher precision
    /// than 4-bit types; like its Q4_K_M, d2c uses q6_k with q4_k (and q8_0 with q4_0).
    pub fn for_head(&self) -> WeightType {
        match self {
            WeightType::Quant(GgmlDType::Q4K) => WeightType::Quant(GgmlDType::Q6K),
            WeightType::Quant(GgmlDType::Q4_0) => WeightType::Quant(GgmlDType::Q8_0),
            other => *other,
        }
    }
}

/// Quantize `w` (rows x cols) as `q`, or name the tensor, the type and a type that works.
pub fn quantize(name: &str, w: &Tensor, q: GgmlDType) -> Result<QTensor> {
    let cols = w.dims().last().copied().unwrap_or(0);
    if cols % q.block_size() != 0 {
        let works = if cols % 32 == 0 { "q8_0 or q4_0 (blocks of 32)" } else { "f16 or bf16 (no block structure)" };
        return Err(Error::Other(format!(
            "tensor `{name}`: rows of {cols} values do not divide into {} blocks of {}; use {works}",
            WeightType::Quant(q).name(),
            q.block_size()
        )));
    }
    Ok(QTensor::quantize(&w.to_dtype(DType::F32)?, q)?)
}

/// From how many input rows a projection stored as `w` dequantizes its weight and runs a
/// dense gemm instead of candle's quantized kernel (measured with `d2c bench
/// --layer-timing`; `D2C_DEQUANTIZE_FROM_ROWS` overrides it for such measurements).
pub fn dequantize_from_rows(w: &QTensor) -> usize {
    static OVERRIDE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    if let Some(n) = *OVERRIDE.get_or_init(|| std::env::var("D2C_DEQUANTIZE_FROM_ROWS").ok().and_then(|v| v.parse().ok())) {
        return n;
    }
    // candle's k-quant kernels beat f32 gemm at every row count here (q4_k: 152 vs 166 ms a
    // layer at 384 rows, 22 vs 38 at 64); its q8_0/q4_0 kernels only at a few rows, except
    // q8_0 on its VNNI path (below): 345-373 GFLOP/s at 32-384 rows against 150-190 for f32
    // on an AVX-512 machine (`d2c bench --kernels`, 2026-12-03).
    match w.dtype() {
        GgmlDType::Q8_0 if candle_repacks_q8_0(w) => usize::MAX,
        GgmlDType::Q8_0 | GgmlDType::Q4_0 => 48,
        _ => usize::MAX,
    }
}

/// Whether candle's quantized matmul runs `w` (q8_0) on its repacked VNNI kernels: a CPU with
/// AVX512-VNNI or AVX-VNNI ([`super::simd::candle_quantized`]), rows a multiple of 16 and of
/// 256 values. Otherwise its q8_0 kernel is a whole-row AVX2 dot product per output.
fn candle_repacks_q8_0(w: &QTensor) -> bool {
    let (n, k) = w.shape().dims2().unwrap_or((0, 0));
    let shape_fits = n > 0 && n.is_multiple_of(16) && k > 0 && k.is_multiple_of(256);
    shape_fits && super::simd::candle_quantized().ends_with("vnni")
}

/// y = x Wᵀ (+ b).
pub enum Proj {
    Dense { w: Tensor, bias: Option<Tensor> },
    Quant { w: Arc<QTensor>, mm: QMatMul, bias: Option<Tensor> },
}

impl Proj {
    /// `w` as `ty` (quantized here, right after loading, so no full-precision copy of the
    /// model ever exists).
    pub fn new(name: &str, w: Tensor, bias: Option<Tensor>, ty: WeightType) -> Result<Self> {
        match ty {
            WeightType::Dense(d) => {
                let act = ty.activations(w.device());
                Ok(Proj::Dense { w: w.to_dtype(d)?, bias: bias.map(|b| b.to_dtype(act)).transpose()? })
            }
            WeightType::Quant(q) => Self::from_qtensor(Arc::new(quantize(name, &w, q)?), bias),
        }
    }

    pub fn from_qtensor(w: Arc<QTensor>, bias: Option<Tensor>) -> Result<Self> {
        let mm = QMatMul::from_arc(w.clone())?;
        Ok(Proj::Quant { w, mm, bias: bias.map(|b| b.to_dtype(DType::F32)).transpose()? })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
        self.forward_with(x, self.kernel(x, rows))
    }

    /// The kernel a call with `rows` rows of activations like `x` runs on.
    pub fn kernel(&self, x: &Tensor, rows: usize) -> Kernel {
        match self {
            Proj::Dense { w, .. } => dense_kernel(x, w, rows),
            Proj::Quant { w, .. } if rows >= dequantize_from_rows(w) => Kernel::Dequantized,
            Proj::Quant { .. } => Kernel::Quantized,
        }
    }

    /// y = x Wᵀ (+ b) on `kernel` (one [`Proj::kernel`] chose for this projection), whatever
    /// the row count: rows stacked from several forwards then get exactly the result each
    /// would get alone, where the kernel computes every row independently of the others.
    pub fn forward_with(&self, x: &Tensor, kernel: Kernel) -> Result<Tensor> {
        let (y, bias) = match (self, kernel) {
            (Proj::Dense { w, bias }, kernel) => (dense(x, w, kernel)?, bias),
            (Proj::Quant { w, bias, .. }, Kernel::Dequantized | Kernel::Gemm | Kernel::Own) => {
                let w = w.dequantize(x.device())?;
                let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
                (dense(x, &w, dense_kernel(x, &w, rows))?, bias)
            }
            (Proj::Quant { mm, bias, .. }, Kernel::Quantized) => (mm.forward(x)?, bias),
        };
        Ok(match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// The storage type's name (`f32`, `q4_k`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Proj::Dense { w, .. } => WeightType::Dense(w.dtype()).name(),
            Proj::Quant { w, .. } => WeightType::Quant(w.dtype()).name(),
        }
    }

    /// Bytes the weight occupies.
    pub fn size_in_bytes(&self) -> usize {
        match self {
            Proj::Dense { w, .. } => w.elem_count() * w.dtype().size_in_bytes(),
            Proj::Quant { w, .. } => w.storage_size_in_bytes(),
        }
    }
}

/// What computes a projection's rows. Stacking rows of several forwards into one call is
/// exact (each row's result as alone) when they share a kernel that computes every row
/// independently: [`Kernel::Own`] and [`Kernel::Quantized`] do; candle's gemm may choose its
/// blocking by the row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// [`super::gemm::xwt`] (f32 on the CPU, few rows) or [`super::gemm::xwt_bf16`] (bf16
    /// weights and f32 activations on the CPU, any row count).
    Own,
    /// candle's dense matmul.
    Gemm,
    /// candle's quantized matmul (activations quantized per row).
    Quantized,
    /// The quantized weight dequantized, then candle's dense matmul.
    Dequantized,
}

impl Kernel {
    /// Whether rows stacked into one call get exactly the result each gets alone.
    pub fn row_independent(self) -> bool {
        matches!(self, Kernel::Own | Kernel::Quantized)
    }
}

/// The dense kernel for `rows` rows of activations like `x` times `w`: the own kernel for
/// f32 on the CPU below [`OWN_GEMM_BELOW_ROWS`] and for bf16 weights at any row count (candle
/// has no bf16 x f32 product, and its bf16 gemm is its slowest), candle's gemm otherwise.
fn dense_kernel(x: &Tensor, w: &Tensor, rows: usize) -> Kernel {
    let fits = own_kernel_fits(x, w);
    if fits && (w.dtype() == DType::BF16 || rows < OWN_GEMM_BELOW_ROWS) {
        Kernel::Own
    } else {
        Kernel::Gemm
    }
}

/// x·Wᵀ on `kernel` (the own kernel falls back to candle's where x and W do not fit it).
fn dense(x: &Tensor, w: &Tensor, kernel: Kernel) -> Result<Tensor> {
    match kernel {
        Kernel::Own => own(x, w)?.map_or_else(|| gemm(x, w), Ok),
        _ => gemm(x, w),
    }
}

fn gemm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    // Activations of another dtype than the weight (bf16 weights on a path the own kernel
    // does not take) meet the weight's dtype and return in their own.
    if x.dtype() != w.dtype() {
        return Ok(gemm(&x.to_dtype(w.dtype())?, w)?.to_dtype(x.dtype())?);
    }
    let wt = match *x.dims() {
        [b1, b2, _, _] => w.broadcast_left((b1, b2))?.t()?,
        [b, _, _] => w.broadcast_left(b)?.t()?,
        _ => w.t()?,
    };
    Ok(x.matmul(&wt)?)
}

/// Up to this many rows an f32 projection runs on [`super::gemm::xwt`], which reads the
/// weight in place, instead of candle's gemm, which repacks it on every call (`d2c bench
/// --profile`: 72-95 against 37-67 GFLOP/s at 32-64 rows; even at 128, candle ahead at 384).
const OWN_GEMM_BELOW_ROWS: usize = 256;

/// f32 activations and an f32 or bf16 weight on the CPU, the weight contiguous: what
/// [`super::gemm::xwt`] and [`super::gemm::xwt_bf16`] read.
fn own_kernel_fits(x: &Tensor, w: &Tensor) -> bool {
    x.dtype() == DType::F32 && matches!(w.dtype(), DType::F32 | DType::BF16) && x.device().is_cpu() && w.is_contiguous() && w.rank() == 2
}

/// x·Wᵀ on the own kernel (any row count), or None when x and W are not what it reads.
fn own(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (n, k) = w.dims2()?;
    let rows = x.elem_count() / k.max(1);
    if !own_kernel_fits(x, w) || x.dims().last() != Some(&k) {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let y = {
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        match (&*xs, &*ws) {
            (Storage::Cpu(xc), Storage::Cpu(wc)) => {
                let xv = &xc.as_slice::<f32>()?[xl.start_offset()..];
                if w.dtype() == DType::BF16 {
                    super::gemm::xwt_bf16(xv, &wc.as_slice::<half::bf16>()?[wl.start_offset()..], rows, n, k)
                } else {
                    super::gemm::xwt(xv, &wc.as_slice::<f32>()?[wl.start_offset()..], rows, n, k)
                }
            }
            _ => return Ok(None),
        }
    };
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    Ok(Some(Tensor::from_vec(y, dims, x.device())?))
}

/// The token embedding, dense or quantized (rows are dequantized on lookup).
pub enum Embed {
    Dense(Tensor),
    Quant(Arc<QTensor>),
}

impl Embed {
    /// Rows `ids` as (n, d) in `dtype`.
    pub fn rows(&self, ids: &Tensor, dtype: DType) -> Result<Tensor> {
        Ok(match self {
            Embed::Dense(t) => t.index_select(ids, 0)?.to_dtype(dtype)?,
            Embed::Quant(q) => q.embedding(ids)?.to_dtype(dtype)?,
        })
    }
    pub fn size_in_bytes(&self) -> usize {
        match self {
            Embed::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            Embed::Quant(q) => q.storage_size_in_bytes(),
        }
    }
}

impl Embed {
    pub fn new(name: &str, t: Tensor, ty: WeightType) -> Result<Self> {
        Ok(match ty {
            WeightType::Dense(d) => Embed::Dense(t.to_dtype(d)?),
            WeightType::Quant(q) => Embed::Quant(Arc::new(quantize(name, &t, q)?)),
        })
    }
}

/// `bytes` as MB or GB.
pub fn fmt_bytes(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// Peak resident memory of this process so far (VmHWM), in bytes; None off Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory the OS says is available for a new allocation (MemAvailable), in bytes.
pub fn available_memory_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
