//! Attention-rollout importance (Abnar & Zuidema 2020, as d²Cache uses it).
//!
//! Per layer, M = (E + I) / rowsum(E + I), where E holds the head-mean attention of the rows
//! recomputed in this forward and identity elsewhere; R = M_L ... M_1 and the importance of a
//! token is the column sum of R (the mass flowing into it). The reference multiplies dense
//! T x T matrices; [`importance_vector`] gets the same column sums as 1^T M_L ... M_1, one
//! row vector pushed backwards through the layers, touching only the recomputed rows.

/// `attn[l][r]` is the attention row (length T) of query row r at layer l; `rows[r]` its
/// absolute position.
pub fn importance_vector(attn: &[Vec<Vec<f32>>], rows: &[usize], t: usize) -> Vec<f64> {
    let mut v = vec![1.0f64; t];
    for layer in attn.iter().rev() {
        let mut next = v.clone();
        for &i in rows {
            next[i] = 0.0;
        }
        for (r, &i) in rows.iter().enumerate() {
            let row = &layer[r];
            let rs: f64 = row.iter().map(|&x| x as f64).sum::<f64>() + 1.0;
            let c = v[i] / rs;
            next[i] += c;
            for (j, &a) in row.iter().enumerate() {
                next[j] += c * a as f64;
            }
        }
        v = next;
    }
    v
}

/// The reference's dense product, kept to check the vector form and for `mode: dense` plans.
pub fn importance_dense(attn: &[Vec<Vec<f32>>], rows: &[usize], t: usize) -> Vec<f64> {
    let mut r = vec![0.0f64; t * t];
    for i in 0..t {
        r[i * t + i] = 1.0;
    }
    for layer in attn {
        let mut m = vec![0.0f64; t * t];
        for i in 0..t {
            m[i * t + i] = 1.0;
        }
        for (q, &i) in rows.iter().enumerate() {
            let rs: f64 = layer[q].iter().map(|&x| x as f64).sum::<f64>() + 1.0;
            for j in 0..t {
                m[i * t + j] = (layer[q][j] as f64 + if i == j { 1.0 } else { 0.0 }) / rs;
            }
        }
        let mut out = vec![0.0f64; t * t];
        for i in 0..t {
            for k in 0..t {
                let a = m[i * t + k];
                if a != 0.0 {
                    for j in 0..t {
                        out[i * t + j] += a * r[k * t + j];
                    }
                }
            }
        }
        r = out;
    }
    (0..t).map(|j| (0..t).map(|i| r[i * t + j]).sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_form_equals_dense_product() {
        let t = 7;
        let rows = vec![1usize, 4, 6];
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32) / (u32::MAX >> 1) as f32
        };
        let attn: Vec<Vec<Vec<f32>>> = (0..3)
            .map(|_| {
                rows.iter()
                    .map(|_| {
                        let raw: Vec<f32> = (0..t).map(|_| rnd() + 0.01).collect();
                        let s: f32 = raw.iter().sum();
                        raw.into_iter().map(|x| x / s).collect()
                    })
                    .collect()
            })
            .collect();
        let a = importance_vector(&attn, &rows, t);
        let b = importance_dense(&attn, &rows, t);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        // mass is conserved: every row of R sums to 1, so the column sums total T
        assert!((a.iter().sum::<f64>() - t as f64).abs() < 1e-9);
    }
}
