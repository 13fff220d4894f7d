//! Python stubs for code mode: registry in, text out.
//!
//! A model in code mode does not see tool schemas. It lists short stub files, one line per tool
//! (`def read_file(path: str, head: int | None = None) -> Any: ...  # Read a file.`), asks for
//! the full docs of the few tools it needs, and writes one script that calls them. This crate
//! turns the tools of each server (name, description, input and output JSON Schema) into:
//!
//! - a [`Catalog`] of Python names for servers, tools and parameters, unique and stable;
//! - the stub files and their tree ([`Catalog::files`], [`Catalog::tree`], [`Catalog::read`]);
//! - the docs of one tool ([`Catalog::docs`]);
//! - the manifest from which the sandbox binds servers lazily ([`Catalog::manifest`]), built
//!   from the same names and parameter order as the stubs, so what the model reads is what runs.
//!
//! Pure functions of their input: no I/O, no clock, deterministic output.

mod catalog;
mod names;
mod render;
mod schema;

pub use catalog::{BindingLevel, Catalog, Function, Param, Server, ServerSpec, ToolSpec};
pub use names::{identifier, unique_identifiers};
pub use render::{StubError, StubFile};
