//! The `codemode` command line.
//!
//! Exit codes (documented in the README): 0 success; 1 the script raised a Python exception;
//! 2 the script hit a sandbox limit; 64 usage error (bad flags, unreadable script, limits over
//! the maxima); 70 the sandbox itself failed. Every failure prints exactly one line on stderr.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use codemode::config::Config;
use codemode::executor::{
    Executor, ExecutorConfig, LimitOverrides, NoTools, RunResult, ToolDispatcher,
};
use codemode::mcp::McpManager;
use serde_json::json;

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

/// How a command ended; `main` turns it into the exit code and the one stderr line.
enum Failure {
    Usage(String),
    Script(String),
    Limit(String),
    Internal(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Script(_) => 1,
            Failure::Limit(_) => 2,
            Failure::Usage(_) => 64,
            Failure::Internal(_) => 70,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Script(m) | Failure::Limit(m) | Failure::Internal(m) => m,
        }
    }
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
    init_logging(&cli.command);
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

/// Logs go to stderr: `info` for the service, `warn` for one-shot commands; `RUST_LOG` overrides.
fn init_logging(command: &Command) {
    let (default, json) = match command {
        Command::Serve { log_json, .. } => ("info,rmcp=warn", *log_json),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
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
            run_script(&script, requested, config.as_deref()).await
        }
        Command::Check { config } => check_config(&config),
        Command::Mcp { config, vk, db } => {
            let db = db.unwrap_or_else(codemode::store::Store::default_path);
            serve_stdio(config.as_deref(), vk.as_deref(), &db).await
        }
        Command::Tools { config } => print_tools(&config).await,
        Command::Tokens { config, sizes } => print_tokens(&config, &sizes).await,
        Command::Serve {
            config,
            port,
            host,
            db,
            ..
        } => {
            let db = db.unwrap_or_else(codemode::store::Store::default_path);
            serve(config.as_deref(), &host, port, &db).await
        }
    }
}

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn serve(
    config: Option<&std::path::Path>,
    host: &str,
    port: u16,
    db: &std::path::Path,
) -> Result<(), Failure> {
    let config = config.map(load_config).transpose()?.unwrap_or_default();
    let store = codemode::store::Store::open(db).map_err(|e| Failure::Usage(e.to_string()))?;
    let store = Arc::new(store);
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {host}:{port}: {e}")))?;
    let manager = McpManager::start_with_store(&config.mcp, Arc::clone(&store))
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let manager = Arc::new(manager);
    let executor =
        Executor::new(ExecutorConfig::default()).map_err(|e| Failure::Internal(e.to_string()))?;
    executor
        .config()
        .limits
        .resolve(&config.sandbox)
        .map_err(|e| Failure::Usage(format!("sandbox: {e}")))?;
    let state =
        codemode::server::AppState::new(Arc::clone(&manager), executor, &config, Some(store))
            .map_err(|e| Failure::Usage(e.to_string()))?;
    let state = Arc::new(state);
    let address = listener
        .local_addr()
        .map_err(|e| Failure::Internal(e.to_string()))?;
    tracing::info!(%address, "codemode is listening");
    let (signalled, signal) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(codemode::server::serve(
        listener,
        Arc::clone(&state),
        async move {
            let _ = signal.await;
        },
    ));
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = signalled.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(Failure::Internal(format!("the server failed: {e}"))),
        Ok(Err(e)) => return Err(Failure::Internal(format!("the server task failed: {e}"))),
        Err(_) => tracing::warn!("in-flight requests did not finish within the grace period"),
    }
    // Every call has been recorded by now; make sure the records are written.
    state.flush_audit().await;
    // Dropping the manager ends every session; stdio children are stopped with it.
    drop(manager);
    Ok(())
}

/// `codemode mcp`: the MCP server on stdin/stdout until the client closes it.
async fn serve_stdio(
    config: Option<&std::path::Path>,
    vk: Option<&str>,
    db: &std::path::Path,
) -> Result<(), Failure> {
    use rmcp::ServiceExt;

    let config = config.map(load_config).transpose()?.unwrap_or_default();
    let store = codemode::store::Store::open(db).map_err(|e| Failure::Usage(e.to_string()))?;
    let store = Arc::new(store);
    let manager = McpManager::start_with_store(&config.mcp, Arc::clone(&store))
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let executor =
        Executor::new(ExecutorConfig::default()).map_err(|e| Failure::Internal(e.to_string()))?;
    let state = codemode::server::AppState::new(Arc::new(manager), executor, &config, Some(store))
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let permit = state
        .keys
        .authenticate(vk)
        .map_err(|e| Failure::Usage(format!("--vk: {e}")))?;
    let state = Arc::new(state);
    let gateway = codemode::server::mcp::Gateway::with_permit(Arc::clone(&state), permit);
    let service = gateway
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Failure::Internal(format!("the MCP session did not start: {e}")))?;
    let _ = service.waiting().await;
    state.flush_audit().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {},
            () = terminate => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn load_config(path: &std::path::Path) -> Result<Config, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    Config::parse(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

/// Reports, one per line on stdout, everything that would stop start-up (errors) and what would
/// fail one client (warnings); fails when there is any error.
fn check_config(path: &std::path::Path) -> Result<(), Failure> {
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

/// A manager with the clients of the config file at `path`; a client that cannot connect is
/// reported on stderr and left out of what follows.
async fn connect_clients(path: &std::path::Path) -> Result<McpManager, Failure> {
    let config = load_config(path)?;
    let manager = McpManager::start(&config.mcp).await;
    for client in manager.status().await {
        if let Some(error) = client.last_error {
            eprintln!(
                "codemode: warning: client {} is not connected: {error}",
                client.name
            );
        }
    }
    Ok(manager)
}

async fn print_tools(path: &std::path::Path) -> Result<(), Failure> {
    let manager = connect_clients(path).await?;
    let tools = codemode::mcp::registry::openai_tools(&manager.tools().await);
    let text = serde_json::to_string_pretty(&json!({ "tools": tools }))
        .map_err(|e| Failure::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

async fn print_tokens(path: &std::path::Path, sizes: &[usize]) -> Result<(), Failure> {
    use codemode::codemode::tokens::{Counter, replicate};

    let manager = connect_clients(path).await?;
    let registry = manager.tools().await;
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

async fn run_script(
    script: &std::path::Path,
    requested: LimitOverrides,
    config: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let code = read_script(script)?;
    let config = config.map(load_config).transpose()?;
    let executor_config = ExecutorConfig::default();
    // Flags win over the file's `sandbox` section, which wins over the built-in defaults.
    let file_limits = config.as_ref().map(|c| c.sandbox).unwrap_or_default();
    let overrides = requested.or(&file_limits);
    let limits = executor_config
        .limits
        .resolve(&overrides)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let executor = Executor::new(executor_config).map_err(|e| Failure::Internal(e.to_string()))?;
    let tools: Arc<dyn ToolDispatcher> = match &config {
        Some(config) => Arc::new(McpManager::start(&config.mcp).await),
        None => Arc::new(NoTools),
    };
    let result = executor
        .execute(&code, &limits, tools)
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?;
    print_result(&result);
    match &result.error {
        None => Ok(()),
        Some(error) => {
            let line = error
                .line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            let message = format!("{}: {}{line}", error.kind, error.message);
            Err(if error.limit.is_some() {
                Failure::Limit(message)
            } else {
                Failure::Script(message)
            })
        }
    }
}

fn read_script(script: &std::path::Path) -> Result<String, Failure> {
    if script.as_os_str() == "-" {
        let mut code = String::new();
        std::io::stdin()
            .read_to_string(&mut code)
            .map_err(|e| Failure::Usage(format!("cannot read the script from stdin: {e}")))?;
        return Ok(code);
    }
    std::fs::read_to_string(script)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", script.display())))
}

/// The script's own output first, then everything else about the run as one JSON document.
fn print_result(result: &RunResult) {
    print!("{}", result.stdout);
    eprint!("{}", result.stderr);
    let summary = json!({
        "ok": result.ok,
        "result": result.result,
        "error": result.error,
        "calls": result.calls,
        "stats": result.stats,
    });
    println!("{summary}");
}
