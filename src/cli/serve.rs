//! `codemode serve`: the HTTP service until SIGINT or SIGTERM, then an orderly stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use codemode::app::{App, StoreChoice};

use super::{Failure, load_optional};

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves on `host:port` with `config` (or none), keeping runtime changes in `db`.
pub async fn serve(config: Option<&Path>, host: &str, port: u16, db: &Path) -> Result<(), Failure> {
    let config = load_optional(config)?;
    // Bind first: a port in use is reported before any client is started.
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {host}:{port}: {e}")))?;
    let app = Arc::new(App::build(&config, StoreChoice::Sqlite(db.to_path_buf())).await?);
    let address = listener
        .local_addr()
        .map_err(|e| Failure::Internal(e.to_string()))?;
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
