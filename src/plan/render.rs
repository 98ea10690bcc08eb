//! The plan as a text listing (one op per line, with the line:col of its rule) or YAML.

use super::{CommitRule, FullWhen, Plan, RolloutPick, RowOp, Score, Val, Window};

fn v(x: &Val) -> String {
    match x {
        Val::Int(i) => i.to_string(),
        Val::Float(f) => format!("{f}"),
        Val::Bool(b) => b.to_string(),
        Val::Kind(k) => k.name().to_string(),
        Val::Path(p) => format!("{p:?}"),
        Val::Param(p) => format!("${}", p.param),
    }
}

pub fn score(s: &Score) -> String {
    match s {
        Score::Confidence => "confidence".into(),
        Score::Margin => "margin".into(),
        Score::NegEntropy => "neg_entropy".into(),
        Score::CachedConfidence => "cached_confidence".into(),
        Score::Density { sigma } => format!("density(sigma={})", v(sigma)),
        Score::Const(c) => v(c),
        Score::Kind(k) => format!("score({})", v(k)),
        Score::Debias { alpha, table } => format!("debias(alpha={}, table={})", v(alpha), v(table)),
        Score::If { cond, then, otherwise } => format!("if({}, {}, {})", v(cond), score(then), score(otherwise)),
        Score::Mul(a, b) => format!("{} * {}", score(a), score(b)),
        Score::Add(a, b) => format!("({} + {})", score(a), score(b)),
    }
}

pub fn to_text(p: &Plan) -> String {
    let mut o = format!("plan {}\n", p.policy);
    let s = &p.schedule;
    o += &format!(
        "  schedule        gen_length={} block_length={} tokens_per_step={} stop_at_eos={} temperature={} top_k={} top_p={} seed={}\n",
        v(&s.gen_length),
        v(&s.block_length),
        v(&s.tokens_per_step),
        v(&s.stop_at_eos),
        v(&s.temperature),
        v(&s.top_k),
        v(&s.top_p),
        v(&s.seed)
    );
    let rule = match &p.commit.rule {
        CommitRule::TopN { n } => format!("top_n({})", v(n)),
        CommitRule::Threshold { threshold, min } => format!("threshold({}, min={})", v(threshold), v(min)),
        CommitRule::Factor { factor, min } => format!("factor({}, min={})", v(factor), v(min)),
        CommitRule::EntropyBounded { gamma, min } => format!("entropy_bounded({}, min={})", v(gamma), v(min)),
        CommitRule::KlStable { kl, history, above, min } => format!("kl_stable({}, history={}, above={}, min={})", v(kl), v(history), v(above), v(min)),
    };
    o += &format!("  {:<15} {} by {} within block  @{}:{}\n", "commit", rule, score(&p.commit.score), p.commit.span.line, p.commit.span.col);
    if p.refresh.rows.is_empty() && p.refresh.full.is_empty() {
        o += if p.layers.is_some() {
            "  refresh         every row every step, per-layer outputs cached (see layers)\n"
        } else {
            "  refresh         full every step (no cache)\n"
        };
    }
    for f in &p.refresh.full {
        let w = match &f.when {
            FullWhen::FirstStep => "first_step".to_string(),
            FullWhen::BlockStart => "block_start".to_string(),
            FullWhen::Every(n) => format!("every {}", v(n)),
        };
        o += &format!("  {:<15} {}  @{}:{}\n", "refresh.full", w, f.span.line, f.span.col);
    }
    for r in &p.refresh.rows {
        let op = match &r.op {
            RowOp::MaskedTopK { k, score: sc, window, prefer_block } => {
                let w = match window {
                    Window::Block => "block".to_string(),
                    Window::All => "all".to_string(),
                    Window::Lookahead { k } => format!("lookahead({})", v(k)),
                };
                format!("masked top_k({}) by {} within {}{}", v(k), score(sc), w, if *prefer_block { " prefer block" } else { "" })
            }
            RowOp::Committed => "committed".into(),
            RowOp::Rollout { pick, mode } => {
                let pk = match pick {
                    RolloutPick::TopP(x) => format!("top_p({})", v(x)),
                    RolloutPick::TopK(x) => format!("top_k({})", v(x)),
                    RolloutPick::Above(x) => format!("above({})", v(x)),
                };
                format!(
                    "rollout {pk} [{}]",
                    match mode {
                        super::RolloutMode::Dense => "dense T x T",
                        super::RolloutMode::Vector => "vector product",
                    }
                )
            }
            RowOp::Block => "block".into(),
            RowOp::Suffix => "suffix".into(),
            RowOp::Prompt { every } => format!("prompt every {}", v(every)),
            RowOp::Inflate { w } => format!("inflate gaps({})", v(w)),
        };
        o += &format!("  {:<15} {}  @{}:{}\n", "refresh.rows", op, r.span.line, r.span.col);
    }
    let quirks: Vec<String> = p.quirks.0.iter().map(|(q, x)| format!("{}={}", q.name(), v(x))).collect();
    o += &format!("  quirks          {}\n", quirks.join(" "));
    if let Some(l) = &p.layers {
        o += &format!(
            "  {:<15} prompt every {}, response every {}, adaptive ratio {}, first layer full {}  @{}:{}\n",
            "layers",
            v(&l.prompt_every),
            v(&l.response_every),
            v(&l.adaptive_ratio),
            v(&l.first_layer_full),
            l.span.line,
            l.span.col
        );
    }
    let n = &p.needs;
    o += &format!(
        "  needs           attention_rows={} rollout={} density={} confidence_cache={} margin={} entropy={}\n",
        n.attention_rows,
        n.rollout.map_or("none".to_string(), |m| format!("{m:?}").to_lowercase()),
        n.density,
        n.confidence_cache,
        n.margin,
        n.entropy
    );
    o
}

pub fn to_yaml(p: &Plan) -> String {
    serde_yaml::to_string(p).unwrap_or_else(|e| format!("# cannot render plan: {e}\n"))
}
