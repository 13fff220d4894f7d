//! `codemode analyze`: which tools a script can call, found without running it.

use std::path::Path;

use codemode::app::{App, StoreChoice};
use codemode::policy::Permit;

use super::run::read_script;
use super::{Failure, load_optional};

/// Prints the analysis of the script at `script` (`-`: stdin) as JSON, with the servers of
/// `config`'s clients bound as a script would have them. A script whose tools cannot be known
/// is not a failure: the answer says why.
pub async fn analyze_script(script: &Path, config: Option<&Path>) -> Result<(), Failure> {
    let code = read_script(script)?;
    let config = load_optional(config)?;
    let app = App::build(&config, StoreChoice::None).await?;
    let analysis = app.gateway.analyze(&Permit::open(), &code).await;
    app.shutdown().await;
    let analysis = analysis.map_err(|e| Failure::Usage(e.to_string()))?;
    let json = serde_json::to_string_pretty(&analysis)
        .map_err(|e| Failure::Internal(format!("cannot print the analysis: {e}")))?;
    println!("{json}");
    Ok(())
}
