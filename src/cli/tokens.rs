//! `codemode tokens`: what a model reads to use a configuration's tools, classic against code
//! mode, counted with o200k_base.

use std::path::Path;

use codemode::code_mode::tokens::{Counter, replicate};

use super::{Failure, connect_clients};

/// Prints a Markdown table: the config file at `path`, then catalogues of `sizes` tools.
pub async fn print_tokens(path: &Path, sizes: &[usize]) -> Result<(), Failure> {
    let app = connect_clients(path).await?;
    let registry = app.manager.tools().await;
    app.shutdown().await;
    let counter = Counter::new().map_err(|e| Failure::Internal(e.to_string()))?;
    let mut catalogues = vec![registry.clone()];
    catalogues.extend(sizes.iter().map(|&size| replicate(&registry, size)));
    println!(
        "| tools | servers | classic | code mode | code mode / classic | meta-tools + tree + file read |"
    );
    println!("|---:|---:|---:|---:|---:|---|");
    for catalogue in &catalogues {
        let report = counter.measure(catalogue);
        let ratio = report.code_mode as f64 / report.classic.max(1) as f64;
        println!(
            "| {} | {} | {} | {} | {:.1}% | {} + {} + {} ({}) |",
            report.tools,
            report.servers,
            report.classic,
            report.code_mode,
            ratio * 100.0,
            report.definitions,
            report.tree,
            report.file,
            report.file_read
        );
    }
    Ok(())
}
