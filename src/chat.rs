//! Chat templates as `transformers`' `apply_chat_template` renders them: the Jinja template
//! of the checkpoint's `tokenizer_config.json` (or `chat_template.jinja`), rendered by
//! minijinja with `trim_blocks` and `lstrip_blocks` on, Python string methods (`strip`,
//! `startswith`, ...), `raise_exception`, `tojson`, and the tokenizer's special tokens
//! (`bos_token`, `eos_token`, ...) as variables. The rendered text is tokenized without
//! adding special tokens, so a template that writes BOS itself (LLaDA's) gets exactly one.

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// One turn of a conversation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message { role: role.into(), content: content.into() }
    }
}

pub struct ChatTemplate {
    source: String,
    /// Where it came from, for error messages.
    origin: String,
    /// Special tokens of tokenizer_config.json (`bos_token`, `eos_token`, ...) by name.
    special: Vec<(String, String)>,
}

/// A special-token entry of tokenizer_config.json: a string or an AddedToken object.
fn token_text(v: &Value) -> Option<String> {
    v.as_str().map(String::from).or_else(|| v.get("content").and_then(|c| c.as_str()).map(String::from))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::io(path, format!("invalid JSON: {e}")))
}

impl ChatTemplate {
    /// The folder's template (`tokenizer_config.json`'s `chat_template`, else
    /// `chat_template.jinja`), or `override_file` when given; `Ok(None)` if there is none.
    pub fn from_dir(dir: &Path, override_file: Option<&Path>) -> Result<Option<Self>> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg = if cfg_path.is_file() { Some(read_json(&cfg_path)?) } else { None };
        let special = cfg
            .as_ref()
            .and_then(|c| c.as_object())
            .map(|o| o.iter().filter(|(k, _)| k.ends_with("_token")).filter_map(|(k, v)| token_text(v).map(|t| (k.clone(), t))).collect())
            .unwrap_or_default();
        let (source, origin) = if let Some(f) = override_file {
            (std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?, f.display().to_string())
        } else if let Some(t) = cfg.as_ref().and_then(|c| c.get("chat_template")) {
            let text = match t {
                Value::String(s) => s.clone(),
                // A list of named templates: the default one.
                Value::Array(list) => list
                    .iter()
                    .find(|e| e.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|e| e.get("template"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| Error::io(&cfg_path, "chat_template is a list without a `default` entry"))?
                    .to_string(),
                _ => return Err(Error::io(&cfg_path, "chat_template is neither a string nor a list of templates")),
            };
            (text, cfg_path.display().to_string())
        } else if dir.join("chat_template.jinja").is_file() {
            let p = dir.join("chat_template.jinja");
            (std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?, p.display().to_string())
        } else {
            return Ok(None);
        };
        Ok(Some(ChatTemplate { source, origin, special }))
    }

    /// The prompt text for `messages`, ending with the assistant's header when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut env = minijinja::Environment::new();
        let fail = |e: minijinja::Error| {
            // The template's own words for raise_exception; the first line otherwise.
            let msg = e.detail().map(String::from).unwrap_or_else(|| e.to_string());
            Error::Other(format!("chat template ({}): {}", self.origin, msg.lines().next().unwrap_or_default()))
        };
        // transformers compiles chat templates with trim_blocks and lstrip_blocks on.
        env.set_syntax(minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(fail)?);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", &self.source).map_err(fail)?;
        let tmpl = env.get_template("chat").map_err(fail)?;
        let mut ctx = serde_json::Map::new();
        for (k, v) in &self.special {
            ctx.insert(k.clone(), Value::String(v.clone()));
        }
        ctx.insert("messages".into(), serde_json::to_value(messages).unwrap_or_default());
        ctx.insert("add_generation_prompt".into(), Value::Bool(add_generation_prompt));
        tmpl.render(minijinja::Value::from(minijinja::value::Serde(ctx))).map_err(fail)
    }
}

/// An OpenAI-style message list: `[{"role": ..., "content": ...}, ...]`; `content` may also
/// be a list of `{"type": "text", "text": ...}` parts.
pub fn read_messages(path: &Path) -> Result<Vec<Message>> {
    let v = read_json(path)?;
    let list = v.as_array().ok_or_else(|| Error::io(path, "expected a JSON list of {\"role\", \"content\"} messages"))?;
    parse_messages(list).map_err(|m| Error::io(path, m))
}

pub fn parse_messages(list: &[Value]) -> std::result::Result<Vec<Message>, String> {
    if list.is_empty() {
        return Err("the message list is empty".into());
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(|r| r.as_str()).ok_or_else(|| format!("message {i}: no string `role`"))?;
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| p.get("text").and_then(|t| t.as_str()).ok_or_else(|| format!("message {i}: a content part without `text`")))
                    .collect::<std::result::Result<Vec<_>, _>>()?
                    .concat(),
                _ => return Err(format!("message {i}: no string `content`")),
            };
            Ok(Message { role: role.into(), content })
        })
        .collect()
}

/// The token ids of a user's prompt: the conversation rendered by the chat template (when
/// the model has one and `raw` is off) and tokenized without added special tokens, or else
/// the message contents joined by spaces and tokenized as plain text.
pub fn prompt_ids(tok: &crate::model::tokenizer::TextTokenizer, template: Option<&ChatTemplate>, messages: &[Message], raw: bool) -> Result<Vec<u32>> {
    match template.filter(|_| !raw) {
        Some(t) => tok.encode_with(&t.render(messages, true)?, false),
        None => tok.encode(&messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join(" ")),
    }
}

/// Tokens before the first stop id (the answer a user reads).
pub fn answer_len(ids: &[u32], stops: &[u32]) -> usize {
    ids.iter().position(|x| stops.contains(x)).unwrap_or(ids.len())
}

/// The answer streamed as its stable left-to-right prefix grows: the canvas up to its first
/// still-masked position, cut at the first stop token, decoded. `d2c run --stream` and the
/// server's `stream_mode: "append"` both send what [`AppendText::advance`] returns.
#[derive(Debug, Default, Clone)]
pub struct AppendText {
    sent: String,
}

impl AppendText {
    /// The text sent so far.
    pub fn sent(&self) -> &str {
        &self.sent
    }

    /// The new text since the last call, if the stable prefix grew. A byte-level tokenizer may
    /// still be mid-character: nothing is sent until the decoded text extends what was sent.
    pub fn advance(&mut self, tok: &crate::model::tokenizer::TextTokenizer, canvas: &[u32], mask: u32, stops: &[u32]) -> Option<String> {
        let stable = canvas.iter().position(|&x| x == mask).unwrap_or(canvas.len());
        let text = tok.decode(&canvas[..stable.min(answer_len(canvas, stops))]).ok()?;
        let new = text.strip_prefix(self.sent.as_str()).filter(|n| !n.is_empty())?.to_string();
        self.sent = text;
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tokenizer::TextTokenizer;

    #[test]
    fn append_text_sends_only_the_growth_of_the_stable_prefix() {
        let Ok(Some(tok)) = TextTokenizer::from_dir(std::path::Path::new("models/tiny-tasks")) else { panic!("the shipped tokenizer loads") };
        let (mask, eos) = (tok.encode("<|mask|>").unwrap_or_default()[0], tok.encode("<|eos|>").unwrap_or_default()[0]);
        let ids = tok.encode("0 1 2").unwrap_or_default();
        let mut a = AppendText::default();
        // Nothing stable yet: position 0 is masked.
        assert_eq!(a.advance(&tok, &[mask, ids[1], mask, mask], mask, &[eos]), None);
        assert_eq!(a.advance(&tok, &[ids[0], ids[1], mask, mask], mask, &[eos]).as_deref(), Some("0 1"));
        // The same prefix again sends nothing; a stop ends the answer.
        assert_eq!(a.advance(&tok, &[ids[0], ids[1], mask, eos], mask, &[eos]), None);
        assert_eq!(a.advance(&tok, &[ids[0], ids[1], ids[2], eos], mask, &[eos]).as_deref(), Some(" 2"));
        assert_eq!(a.advance(&tok, &[ids[0], ids[1], ids[2], eos], mask, &[eos]), None);
        assert_eq!(a.sent(), "0 1 2");
    }
}
