//! `d2c bench --kernels`: GFLOP/s of the projection kernels on one layer's shapes (q/k/v,
//! gate/up, down of a model of this width), per instruction set this CPU has and per weight
//! type, next to candle's dense matmul, at the row counts a step computes: 1 and 32-64 (cached
//! steps), 384 (a full forward of the bench model). Weights stream from memory as in a
//! forward: the three matrices of one layer exceed the caches of a small machine.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use d2c::model::gemm;
use d2c::model::simd::{self, Simd, Width};
use half::bf16;
use std::time::Instant;

pub fn run(d: usize, ff: usize, reps: usize, markdown: bool) -> Result<(), String> {
    let shapes = [(3 * d, d), (2 * ff, d), (d, ff)];
    let mut seed = 7u64;
    let mut r = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let ws: Vec<Vec<f32>> = shapes.iter().map(|&(n, k)| (0..n * k).map(|_| r()).collect()).collect();
    let wb: Vec<Vec<bf16>> = ws.iter().map(|w| w.iter().map(|&v| bf16::from_f32(v)).collect()).collect();
    let rows = [1usize, 32, 64, 384];
    let mut lines = Vec::new();
    let paths: Vec<Simd> = simd::available().into_iter().filter(|p| p.width > Width::Scalar).collect();
    for s in &paths {
        let name = format!("{:?}{}", s.width, if s.bf16_dot { " + bf16 dot" } else { "" }).to_lowercase();
        if !s.bf16_dot {
            lines.push(line(&format!("own f32, {name}"), &rows, reps, &shapes, |m, i| {
                let k = shapes[i].1;
                let x: Vec<f32> = vec![0.5; m * k];
                drop(gemm::xwt_on(*s, &x, &ws[i], m, shapes[i].0, k));
                Ok(())
            })?);
        }
        lines.push(line(&format!("own bf16 weights, {name}"), &rows, reps, &shapes, |m, i| {
            let k = shapes[i].1;
            let x: Vec<f32> = vec![0.5; m * k];
            drop(gemm::xwt_bf16_on(*s, &x, &wb[i], m, shapes[i].0, k));
            Ok(())
        })?);
    }
    {
        let qs: Vec<QTensor> = ws
            .iter()
            .zip(&shapes)
            .map(|(w, &(n, k))| QTensor::quantize(&Tensor::from_slice(w, (n, k), &Device::Cpu)?, GgmlDType::Q8_0))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let mms: Vec<QMatMul> = qs.into_iter().map(|q| QMatMul::from_arc(std::sync::Arc::new(q))).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        lines.push(line("candle q8_0 matmul", &rows, reps, &shapes, |m, i| {
            let x = Tensor::ones((m, shapes[i].1), candle_core::DType::F32, &Device::Cpu)?;
            drop(mms[i].forward(&x)?);
            Ok(())
        })?);
    }
    let wt: Vec<Tensor> =
        ws.iter().zip(&shapes).map(|(w, &(n, k))| Tensor::from_slice(w, (n, k), &Device::Cpu)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    lines.push(line("candle gemm f32", &rows, reps, &shapes, |m, i| {
        let x = Tensor::ones((m, shapes[i].1), candle_core::DType::F32, &Device::Cpu)?;
        drop(x.matmul(&wt[i].t()?)?);
        Ok(())
    })?);
    println!("projection kernels on one layer (d_model {d}, mlp {ff}: q/k/v, gate/up, down), GFLOP/s, best of {reps}; {}", simd::describe());
    let header: Vec<String> = std::iter::once("kernel".to_string()).chain(rows.iter().map(|r| format!("@{r} rows"))).collect();
    super::print_table(&header.iter().map(String::as_str).collect::<Vec<_>>(), &lines, markdown);
    Ok(())
}

/// One table line: for each row count, the best of `reps` passes over the three shapes.
fn line(
    name: &str,
    rows: &[usize],
    reps: usize,
    shapes: &[(usize, usize)],
    mut f: impl FnMut(usize, usize) -> candle_core::Result<()>,
) -> Result<Vec<String>, String> {
    let mut cells = vec![name.to_string()];
    for &m in rows {
        let flops: f64 = shapes.iter().map(|&(n, k)| 2.0 * (m * n * k) as f64).sum();
        let mut best = f64::MAX;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            for i in 0..shapes.len() {
                f(m, i).map_err(|e| e.to_string())?;
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        cells.push(format!("{:.0}", flops / best / 1e9));
    }
    Ok(cells)
}
