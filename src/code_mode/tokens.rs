//! What a model pays to see the tools: the classic tool list against code mode, in tokens
//! (o200k_base), for `codemode tokens`.
//!
//! - classic: every tool as an OpenAI function definition, as the JSON sent with each request;
//! - code mode: the four meta-tool definitions, the `listToolFiles` tree, and `readToolFile` of
//!   the largest stub file (the worst single file a model may read).
//!
//! [`replicate`] grows a registry to a given number of tools by copying its clients under new
//! names, to see how both grow with the catalogue.

use codemode_stubs::{BindingLevel, Catalog};
use serde_json::Value;
use tiktoken_rs::CoreBPE;

use super::{meta, server_specs};
use crate::mcp::ClientTools;
use crate::mcp::tools::openai_tools;
use crate::policy::Permit;

/// Tokens of one catalogue, both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReport {
    /// Tools in the catalogue.
    pub tools: usize,
    /// Servers in the catalogue.
    pub servers: usize,
    /// Tokens of every tool as an OpenAI function definition.
    pub classic: usize,
    /// Tokens of the meta-tools, the file tree and the largest stub file.
    pub code_mode: usize,
    /// Of which: the meta-tool definitions.
    pub definitions: usize,
    /// Of which: the `listToolFiles` tree.
    pub tree: usize,
    /// Of which: `readToolFile` of the largest stub file.
    pub file: usize,
    /// The stub file counted for code mode.
    pub file_read: String,
}

/// The tokeniser could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the o200k_base tokeniser: {0}")]
pub struct TokeniserError(String);

/// Counts tokens with o200k_base.
pub struct Counter {
    bpe: CoreBPE,
}

impl Counter {
    /// Loads the tokeniser (embedded in the binary).
    ///
    /// # Errors
    /// [`TokeniserError`] when its tables do not load.
    pub fn new() -> Result<Counter, TokeniserError> {
        let bpe = tiktoken_rs::o200k_base().map_err(|e| TokeniserError(e.to_string()))?;
        Ok(Counter { bpe })
    }

    /// Tokens of `text`.
    pub fn count(&self, text: &str) -> usize {
        self.bpe.encode_ordinary(text).len()
    }

    /// Tokens of both presentations of `registry`, every client counted as a code-mode client.
    pub fn measure(&self, registry: &[ClientTools]) -> TokenReport {
        let classic: Vec<ClientTools> = registry
            .iter()
            .map(|c| ClientTools {
                code_mode: false,
                ..c.clone()
            })
            .collect();
        let classic_json = Value::Array(openai_tools(&classic)).to_string();
        let listed: Vec<ClientTools> = registry
            .iter()
            .map(|c| ClientTools {
                code_mode: true,
                ..c.clone()
            })
            .collect();
        let catalog = Catalog::build(
            &server_specs(&listed, &Permit::open()),
            BindingLevel::Server,
        );
        let largest = catalog
            .files()
            .into_iter()
            .max_by_key(|f| self.count(&f.text));
        let (file_read, file_tokens) = match largest {
            Some(file) => {
                let read = catalog.read(&file.path, None, None).unwrap_or_default();
                (file.path, self.count(&read))
            }
            None => (String::new(), 0),
        };
        let definitions = self.count(&Value::Array(meta::definitions()).to_string());
        let tree = self.count(&catalog.tree());
        TokenReport {
            tools: registry.iter().map(|c| c.tools.len()).sum(),
            servers: registry.len(),
            classic: self.count(&classic_json),
            code_mode: definitions + tree + file_tokens,
            definitions,
            tree,
            file: file_tokens,
            file_read,
        }
    }
}

/// `registry` grown (or cut) to exactly `size` tools: its clients in turn, copies named
/// `<client>_2`, `<client>_3`, ...; the last client taken may lose some tools.
pub fn replicate(registry: &[ClientTools], size: usize) -> Vec<ClientTools> {
    let mut grown = Vec::new();
    let mut total = 0;
    let sources: Vec<&ClientTools> = registry.iter().filter(|c| !c.tools.is_empty()).collect();
    let mut round = 1;
    while total < size && !sources.is_empty() {
        for client in &sources {
            if total >= size {
                break;
            }
            let mut copy = (*client).clone();
            if round > 1 {
                copy.client = format!("{}_{round}", client.client);
            }
            copy.tools.truncate(size - total);
            total += copy.tools.len();
            grown.push(copy);
        }
        round += 1;
    }
    grown
}
