//! The `codemode` command line: parse, dispatch to [`cli`], exit.
//!
//! Exit codes (documented in the README): 0 success; 1 the script raised a Python exception;
//! 2 the script hit a sandbox limit; 64 usage error (bad flags, unreadable script, limits over
//! the maxima); 70 the sandbox itself failed. Every failure prints exactly one line on stderr.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::Failure;
use codemode::executor::LimitOverrides;
use codemode::store::Store;

#[derive(Parser)]
#[command(
    name = "codemode",
    version,
    about = "Run model-written Python against MCP tools, in a sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Python script in the sandbox; print its output, then the result as JSON.
    Run {
        /// The script to run, or `-` to read it from stdin.
        script: PathBuf,
        /// Wall-clock limit of the run, in milliseconds.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Memory limit of the run, in MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
        /// A configuration file whose MCP clients the script may call.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print which tools a script can call, found by parsing it in the sandbox (nothing runs).
    Analyze {
        /// The script, or `-` to read it from stdin.
        script: PathBuf,
        /// A configuration file whose MCP clients the script would call.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the HTTP service: management API and tool execution.
    Serve {
        /// A configuration file; without one the service starts with no clients.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Port to listen on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Log as JSON lines instead of human-readable text.
        #[arg(long)]
        log_json: bool,
        /// The SQLite database for runtime changes (default: ~/.local/share/codemode/codemode.db).
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Serve codemode as an MCP server over stdio (for clients that launch a command).
    Mcp {
        /// A configuration file; without one there are no clients.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The virtual key whose permissions every request has (required when keys exist).
        #[arg(long)]
        vk: Option<String>,
        /// The SQLite database (default: ~/.local/share/codemode/codemode.db).
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Check a configuration file without starting anything; report every problem found.
    Check {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Connect a configuration's clients and print their tools as OpenAI function definitions.
    Tools {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Count the tokens a model reads to use a configuration's tools: every tool definition
    /// (classic) against the code-mode meta-tools, file tree and largest stub file.
    Tokens {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Also measure catalogues of these many tools, made by copying the clients under new
        /// names (comma-separated, e.g. 15,100,500).
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<usize>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let usage = error.use_stderr();
            let _ = error.print();
            return ExitCode::from(if usage { 64 } else { 0 });
        }
    };
    // The service sets its logs up once its configuration is read (traces may be exported).
    if !matches!(cli.command, Command::Serve { .. }) {
        init_logging();
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Internal(format!("cannot start the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(dispatch(cli.command)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("codemode: {}", failure.message());
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Logs of one-shot commands go to stderr: `warn`; `RUST_LOG` overrides.
fn init_logging() {
    // Nothing to export: no endpoint, so this cannot fail.
    let _ = codemode::observe::telemetry::init("warn", false, None);
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            script,
            timeout_ms,
            memory_mb,
            config,
        } => {
            let requested = LimitOverrides {
                timeout_ms,
                memory_mb,
                ..LimitOverrides::default()
            };
            cli::run::run_script(&script, requested, config.as_deref()).await
        }
        Command::Analyze { script, config } => {
            cli::analyze::analyze_script(&script, config.as_deref()).await
        }
        Command::Check { config } => cli::check::check_config(&config),
        Command::Mcp { config, vk, db } => {
            let db = db.unwrap_or_else(Store::default_path);
            cli::mcp::serve_stdio(config.as_deref(), vk.as_deref(), &db).await
        }
        Command::Tools { config } => cli::tools::print_tools(&config).await,
        Command::Tokens { config, sizes } => cli::tokens::print_tokens(&config, &sizes).await,
        Command::Serve {
            config,
            port,
            host,
            db,
            log_json,
        } => {
            let db = db.unwrap_or_else(Store::default_path);
            cli::serve::serve(config.as_deref(), &host, port, &db, log_json).await
        }
    }
}
