//! `codemode check`: validate a configuration file without starting anything.

use std::path::Path;

use codemode::config::Config;

use super::{Failure, load_config};

/// Reports, one per line on stdout, everything that would stop start-up (errors) and what would
/// fail one client (warnings); fails when there is any error.
pub fn check_config(path: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    let problems = Config::problems(&text);
    for problem in &problems {
        println!("error: {problem}");
    }
    if !problems.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: {} error(s)",
            path.display(),
            problems.len()
        )));
    }
    let config = load_config(path)?;
    let mut missing = 0;
    for client in &config.mcp.client_configs {
        for name in client.env_references() {
            if std::env::var(&name).is_err() {
                missing += 1;
                println!(
                    "warning: client {}: environment variable {name} is not set",
                    client.name
                );
            }
        }
    }
    let clients = config.mcp.client_configs.len();
    println!(
        "{}: valid, {clients} client(s), {missing} missing variable(s)",
        path.display()
    );
    Ok(())
}
