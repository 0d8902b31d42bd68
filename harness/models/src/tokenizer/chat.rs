//! The model's chat template (`tokenizer.chat_template`, Jinja) rendered with minijinja.

use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

use super::TokenizerError;

/// One chat message.
#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles `source`; `bos` and `eos` are the texts of those tokens, which templates may reference.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, TokenizerError> {
        let mut env = Environment::new();
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_string()).map_err(|e| TokenizerError::Template(e.to_string()))?;
        Ok(Self { env, bos: bos.into(), eos: eos.into() })
    }

    /// Renders `messages` followed by the assistant's generation prompt.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, TokenizerError> {
        let tmpl = self.env.get_template("chat").map_err(|e| TokenizerError::Template(e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| TokenizerError::Template(e.to_string()))
    }
}

/// A user message (after an optional system message) rendered through the model's chat template `source` with the
/// assistant's generation prompt, as token ids (special tokens in the rendered text parsed as such).
pub fn chat_prompt_ids(
    tok: &super::Tokenizer,
    source: &str,
    system: Option<&str>,
    user: &str,
) -> Result<Vec<u32>, TokenizerError> {
    let v = tok.vocab();
    let name = |id: Option<u32>| id.map(|i| v.tokens[i as usize].clone()).unwrap_or_default();
    let tmpl = ChatTemplate::new(source, &name(v.bos), &name(v.eos))?;
    let mut msgs = Vec::new();
    if let Some(s) = system {
        msgs.push(ChatMessage { role: "system".into(), content: s.into() });
    }
    msgs.push(ChatMessage { role: "user".into(), content: user.into() });
    Ok(tok.encode(&tmpl.render(&msgs)?, true))
}
