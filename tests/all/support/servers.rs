//! The real MCP servers the tests talk to, as client configurations and running processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use codemode::config::Config;
use codemode::mcp::McpManager;
use serde_json::{Value, json};

use super::gateway::Managed;

/// The entry point of an npm MCP server installed for the tests.
pub fn server_script(package: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers/node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        path.is_file(),
        "{} is missing: run `npm ci --prefix tests/servers`",
        path.display()
    );
    path
}

/// A stdio client running the npm package `package` (server-memory gets a file of its own).
pub fn stdio_client(name: &str, package: &str, extra_args: &[&str], envs: &[&str]) -> Value {
    let mut args = vec![server_script(package).display().to_string()];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let mut envs: Vec<String> = envs.iter().map(|e| e.to_string()).collect();
    if package == "server-memory" {
        // Its graph lives in a file, by default one shared by every instance: give each its own.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file =
            std::env::temp_dir().join(format!("codemode-memory-{}-{n}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&file);
        envs.push(format!("MEMORY_FILE_PATH={}", file.display()));
    }
    json!({
        "name": name,
        "connection_type": "stdio",
        "stdio_config": {"command": "node", "args": args, "envs": envs},
    })
}

/// A manager started with `clients` and default settings.
pub async fn manager(clients: Vec<Value>) -> Managed {
    let config = Config::parse(&json!({"mcp": {"client_configs": clients}}).to_string())
        .expect("valid config");
    Managed::new(McpManager::start(&config.mcp).await)
}

/// The Python of the virtual environment that holds the PyPI MCP servers.
pub fn venv_python() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/venv/bin/python");
    assert!(
        path.is_file(),
        "{} is missing: see the README's test command",
        path.display()
    );
    path
}

/// A stdio client running the venv's Python with `args`.
pub fn python_client(name: &str, args: &[&str]) -> Value {
    json!({
        "name": name,
        "connection_type": "stdio",
        "stdio_config": {"command": venv_python().display().to_string(), "args": args},
    })
}

/// server-everything serving one HTTP transport on a free loopback port.
pub struct HttpServer {
    child: Child,
    pub port: u16,
}

impl HttpServer {
    /// Starts `transport` (`streamableHttp` or `sse`) and returns once it listens.
    pub fn start(transport: &str) -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        HttpServer::start_on(transport, port)
    }

    /// Starts `transport` on `port` and returns once the server says it listens (the
    /// streamable-HTTP server says so on stderr, the SSE one on stdout).
    pub fn start_on(transport: &str, port: u16) -> HttpServer {
        let mut child = Command::new("node")
            .arg(server_script("server-everything"))
            .arg(transport)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let (lines, ready) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for output in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        drop(lines);
        loop {
            let line = ready.recv().expect("the server logs before exiting");
            if line.contains("listening on port") || line.contains("running on port") {
                break;
            }
        }
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
