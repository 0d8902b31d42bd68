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
