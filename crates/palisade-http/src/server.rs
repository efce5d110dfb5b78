//! Serving with graceful shutdown: on the signal, stop accepting, let in-flight
//! requests finish, and give up on stragglers after a deadline.

use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        tracing::info!(
            drain_seconds = drain.as_secs_f64(),
            "shutting down: draining in-flight requests"
        );
        let _ = stopping_tx.send(true);
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let deadline = async move {
        while !*stopping_rx.borrow() {
            if stopping_rx.changed().await.is_err() {
                // The sender is gone only when the server future finished; never fire.
                std::future::pending::<()>().await;
            }
        }
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("drain deadline passed; closing remaining connections");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
