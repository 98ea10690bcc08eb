//! The whole front end in one call: parse, check, bind `--set` values, validate, optimise.

use crate::check::bind::{bind, validate};
use crate::check::{check, Checked};
use crate::diag::Diagnostic;
use crate::plan::passes::{default_passes, optimize, Pass};
use crate::plan::Plan;
pub use crate::source::Source;

pub struct Compiled {
    pub plan: Plan,
    pub checked: Checked,
    /// Warnings (no errors: a compiled policy has none).
    pub warnings: Vec<Diagnostic>,
}

/// Every diagnostic of a policy that failed to compile, errors and warnings.
pub struct Failed {
    pub diagnostics: Vec<Diagnostic>,
}

/// Check only: all diagnostics for the defaults (and `sets`, if any).
pub fn diagnostics(src: &Source, sets: &[String]) -> Vec<Diagnostic> {
    match compile(src, sets, &mut |_, _| {}) {
        Ok(c) => c.warnings,
        Err(f) => f.diagnostics,
    }
}

pub fn compile(src: &Source, sets: &[String], observe: &mut dyn FnMut(&dyn Pass, &Plan)) -> Result<Compiled, Failed> {
    let file = crate::syntax::parse(&src.text).map_err(|d| Failed { diagnostics: vec![*d] })?;
    let checked = check(&file);
    let mut diags = checked.diagnostics.clone();
    let bindings = match bind(&checked, sets) {
        Ok(b) => Some(b),
        Err(e) => {
            diags.extend(e);
            None
        }
    };
    if let Some(b) = &bindings {
        diags.extend(validate(&checked, b));
    }
    if diags.iter().any(|d| d.is_error()) {
        return Err(Failed { diagnostics: diags });
    }
    let (Some(plan), Some(b)) = (checked.plan.clone(), bindings) else {
        return Err(Failed { diagnostics: diags });
    };
    let plan = optimize(plan, &b.values, &default_passes(), observe);
    Ok(Compiled { plan, checked, warnings: diags })
}

/// The policy files (`*.pol`) of `dir`, sorted by name.
pub fn policy_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|x| x == "pol") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
