//! `d2c snapshot`: a policy's behaviour as stable text ([`d2c::snapshot`]), or with
//! `--check DIR` every `*.pol` of a folder against `DIR/snapshots/<name>.snap` (insta's file
//! format), printing a diff where they differ; `--accept` rewrites them.

use super::{parse_ids, CliError, CliResult, ModelArgs, SetArgs};
use d2c::compile::Source;
use d2c::engine::Engine;
use d2c::snapshot::{decode, Prompt, DEFAULT_PROMPTS};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SnapshotArgs {
    /// The policy to decode and render (not with --check).
    #[arg(required_unless_present = "check", conflicts_with = "check")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt text (repeatable). Default: the prompt set of `--check` (README).
    #[arg(long, conflicts_with = "prompt_ids")]
    prompt: Vec<String>,
    /// Prompt as token ids `1,2,3` (repeatable).
    #[arg(long = "prompt-ids")]
    prompt_ids: Vec<String>,
    #[command(flatten)]
    sets: SetArgs,
    /// Compare every `*.pol` in DIR with DIR/snapshots/*.snap (prompts: DIR/prompts.txt or the default set).
    #[arg(long, value_name = "DIR")]
    check: Option<PathBuf>,
    /// With --check: write the new snapshots instead of failing.
    #[arg(long, requires = "check")]
    accept: bool,
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
    let sets = d2c::engine::sets_for(src, sets);
    let mut parts = Vec::new();
    for p in prompts {
        parts.push(decode(engine, src, prompt_of(p)?, &sets).map_err(|e| e.to_string())?);
    }
    Ok(parts.join("\n"))
}

pub fn run(a: SnapshotArgs) -> CliResult {
    let engine = Engine::load(a.model.model.as_deref(), a.model.dtype.weight_type())?;
    let sets = &a.sets.sets;
    if let Some(dir) = &a.check {
        return check(&engine, dir, sets, a.accept);
    }
    let path = a.policy.as_deref().ok_or("give a policy file or --check DIR")?;
    let src = Source::read(&path.to_string_lossy()).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prompts: Vec<String> = a.prompt.clone();
    prompts.extend(a.prompt_ids.iter().map(|p| format!("ids:{p}")));
    if prompts.is_empty() {
        prompts = DEFAULT_PROMPTS.iter().map(|s| s.to_string()).collect();
    }
    let known = d2c::engine::sets_for(&src, sets);
    if let Some(bad) = sets.iter().find(|s| !known.contains(s)) {
        let names = d2c::engine::declared_params(&src);
        return Err(format!("--set {bad}: {} declares no such parameter (it has: {})", path.display(), names.join(", ")).into());
    }
    print!("{}", snapshot_of(&engine, &src, &prompts, sets)?);
    Ok(())
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

fn check(engine: &Engine, dir: &Path, sets: &[String], accept: bool) -> CliResult {
    let policies: Vec<PathBuf> = d2c::compile::policy_files(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if policies.is_empty() {
        return Err(format!("{}: no *.pol files", dir.display()).into());
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
    if failed > 0 {
        Err(CliError::Reported)
    } else if differ > 0 && !accept {
        Err(CliError::Invalid)
    } else {
        Ok(())
    }
}
