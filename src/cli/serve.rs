//! `codemode serve`: the HTTP service until SIGINT or SIGTERM, then an orderly stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use codemode::app::{App, StoreChoice};
use codemode::observe::telemetry;
use codemode::policy::Auth;
use codemode::server::ui::access::is_loopback;

use super::{Failure, load_optional};

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves on `host:port` with `config` (or none), keeping runtime changes in `db`.
pub async fn serve(
    config: Option<&Path>,
    host: &str,
    port: u16,
    db: &Path,
    log_json: bool,
) -> Result<(), Failure> {
    let config = load_optional(config)?;
    let endpoint = config.observability.otlp_endpoint.as_deref();
    let telemetry = telemetry::init("info,rmcp=warn", log_json, endpoint)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let outcome = serve_with(config, host, port, db).await;
    // The last spans leave before the process does (the exporter blocks while it sends).
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?;
    outcome
}

async fn serve_with(
    mut config: codemode::config::Config,
    host: &str,
    port: u16,
    db: &Path,
) -> Result<(), Failure> {
    // Bound first: OAuth redirects come back to the address actually listened on.
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {host}:{port}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if config.oauth.public_url.is_none() {
        config.oauth.public_url = Some(default_public_url(host, address.port()));
    }
    let app = Arc::new(App::build(&config, StoreChoice::Sqlite(db.to_path_buf())).await?);
    // Nothing was configured that asks callers for a key: fine on this machine, not on a
    // network.
    if app.keys.auth() == Auth::Unconfigured && !is_loopback(host) {
        app.shutdown().await;
        return Err(Failure::Usage(format!(
            "refusing to serve on {host} with no virtual keys: anyone who reaches it could call \
             every tool; configure governance.virtual_keys or an admin token, or set \
             governance.auth to \"open\""
        )));
    }
    tracing::info!(%address, "codemode is listening");
    let (signalled, signal) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(codemode::server::serve(
        listener,
        Arc::clone(&app),
        async move {
            let _ = signal.await;
        },
    ));
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = signalled.send(());
    let outcome = match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(Failure::Internal(format!("the server failed: {e}"))),
        Ok(Err(e)) => Err(Failure::Internal(format!("the server task failed: {e}"))),
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within the grace period");
            Ok(())
        }
    };
    // Every call has been recorded by now: write the records, then stop the clients.
    app.shutdown().await;
    outcome
}

/// Where a browser on this machine reaches codemode listening on `host`:`port`.
fn default_public_url(host: &str, port: u16) -> String {
    let unspecified = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if unspecified || is_loopback(host) {
        format!("http://localhost:{port}")
    } else {
        format!("http://{host}:{port}")
    }
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
