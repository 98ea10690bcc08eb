//! `d2c snapshot`: a policy's behaviour as stable text ([`crate::snapshot`]), or with
//! `--check DIR` every `*.pol` of a folder against `DIR/snapshots/<name>.snap` (insta's file
//! format), printing a diff where they differ; `--accept` rewrites them.

use super::{parse_ids, Dtype, EXIT_ERROR, EXIT_OK, EXIT_POLICY};
use crate::compile::Source;
use crate::engine::Engine;
use crate::snapshot::{decode, Prompt, DEFAULT_PROMPTS};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// The policy to decode and render (not with --check).
    #[arg(required_unless_present = "check", conflicts_with = "check")]
    policy: Option<PathBuf>,
    /// Model folder or .gguf file. Default: the embedded tiny model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt text (repeatable). Default: the prompt set of `--check` (README).
    #[arg(long, conflicts_with = "prompt_ids")]
    prompt: Vec<String>,
    /// Prompt as token ids `1,2,3` (repeatable).
    #[arg(long = "prompt-ids")]
    prompt_ids: Vec<String>,
    /// Set a policy parameter, `name=value` (repeatable; with --check, for every policy that declares it).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Compare every `*.pol` in DIR with DIR/snapshots/*.snap (prompts: DIR/prompts.txt or the default set).
    #[arg(long, value_name = "DIR")]
    check: Option<PathBuf>,
    /// With --check: write the new snapshots instead of failing.
    #[arg(long, requires = "check")]
    accept: bool,
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
}

pub fn run(a: SnapshotArgs) -> i32 {
    match inner(a) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            EXIT_ERROR
        }
    }
}

/// A prompt line: text, or `ids: 1,2,3`.
fn prompt_of(line: &str) -> Result<Prompt<'_>, String> {
    match line.strip_prefix("ids:") {
        Some(ids) => Ok(Prompt::Ids(parse_ids(ids)?)),
        None => Ok(Prompt::Text(line)),
    }
}

/// Every prompt's rendering, one after another.
fn snapshot_of(engine: &Engine, src: &Source, prompts: &[String], sets: &[String]) -> Result<String, String> {
    // One --set list serves every policy of a folder: keep what this policy declares.
    let sets = crate::engine::sets_for(src, sets);
    let mut parts = Vec::new();
    for p in prompts {
        parts.push(decode(engine, src, prompt_of(p)?, &sets).map_err(|e| e.to_string())?);
    }
    Ok(parts.join("\n"))
}

fn inner(a: SnapshotArgs) -> Result<i32, String> {
    let engine = Engine::load(a.model.as_deref(), a.dtype.weight_type()).map_err(|e| e.to_string())?;
    if let Some(dir) = &a.check {
        return check(&engine, dir, &a.sets, a.accept);
    }
    let path = a.policy.as_deref().ok_or("give a policy file or --check DIR")?;
    let src = Source::read(&path.to_string_lossy()).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prompts: Vec<String> = a.prompt.clone();
    prompts.extend(a.prompt_ids.iter().map(|p| format!("ids:{p}")));
    if prompts.is_empty() {
        prompts = DEFAULT_PROMPTS.iter().map(|s| s.to_string()).collect();
    }
    let known = crate::engine::sets_for(&src, &a.sets);
    if let Some(bad) = a.sets.iter().find(|s| !known.contains(s)) {
        let names = crate::engine::declared_params(&src);
        return Err(format!("--set {bad}: {} declares no such parameter (it has: {})", path.display(), names.join(", ")));
    }
    print!("{}", snapshot_of(&engine, &src, &prompts, &a.sets)?);
    Ok(EXIT_OK)
}

/// The prompts of a snapshot folder: `prompts.txt` (one per line, `#` comments, `ids: 1,2`
/// for token ids) or the default set.
fn folder_prompts(dir: &Path) -> Result<Vec<String>, String> {
    let f = dir.join("prompts.txt");
    if !f.is_file() {
        return Ok(DEFAULT_PROMPTS.iter().map(|s| s.to_string()).collect());
    }
    let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
    let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    if lines.is_empty() {
        return Err(format!("{}: no prompts (one per line)", f.display()));
    }
    Ok(lines)
}

/// The body of an insta `.snap` file (after its `---` header), or the whole text without one.
pub fn snap_body(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix("---\n") {
        if let Some(end) = rest.find("\n---\n") {
            return &rest[end + 5..];
        }
    }
    text
}

fn snap_file(policy: &Path, prompts: usize, body: &str) -> String {
    format!("---\nsource: d2c snapshot\nexpression: \"{} on {prompts} prompt(s)\"\n---\n{}\n", policy.display(), body.trim_end())
}

fn check(engine: &Engine, dir: &Path, sets: &[String], accept: bool) -> Result<i32, String> {
    let mut policies: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pol"))
        .collect();
    policies.sort();
    if policies.is_empty() {
        return Err(format!("{}: no *.pol files", dir.display()));
    }
    let prompts = folder_prompts(dir)?;
    let snaps = dir.join("snapshots");
    let (mut same, mut differ, mut failed) = (0, 0, 0);
    for p in &policies {
        let src = Source::read(&p.to_string_lossy()).map_err(|e| format!("{}: {e}", p.display()))?;
        let new = match snapshot_of(engine, &src, &prompts, sets) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let file = snaps.join(format!("{stem}.snap"));
        let old = std::fs::read_to_string(&file).ok();
        let old_body = old.as_deref().map(|t| snap_body(t).trim_end().to_string());
        if old_body.as_deref() == Some(new.trim_end()) {
            same += 1;
            continue;
        }
        differ += 1;
        if accept {
            std::fs::create_dir_all(&snaps).map_err(|e| format!("{}: {e}", snaps.display()))?;
            std::fs::write(&file, snap_file(p, prompts.len(), &new)).map_err(|e| format!("{}: {e}", file.display()))?;
            println!("{}: {}", file.display(), if old.is_some() { "updated" } else { "written" });
            continue;
        }
        match &old_body {
            None => println!("{}: no snapshot yet (run with --accept to write it)", file.display()),
            Some(o) => {
                println!("{}: differs from {}", p.display(), file.display());
                let diff = similar::TextDiff::from_lines(o.as_str(), new.trim_end());
                print!("{}", diff.unified_diff().context_radius(2).header(&format!("{} (snapshot)", file.display()), &format!("{} (now)", p.display())));
            }
        }
    }
    let total = policies.len();
    if accept {
        println!("{total} policies: {same} unchanged, {differ} accepted{}", if failed > 0 { format!(", {failed} failed") } else { String::new() });
    } else {
        println!("{total} policies: {same} match, {differ} differ{}", if failed > 0 { format!(", {failed} failed") } else { String::new() });
    }
    Ok(if failed > 0 {
        EXIT_ERROR
    } else if differ > 0 && !accept {
        EXIT_POLICY
    } else {
        EXIT_OK
    })
}
