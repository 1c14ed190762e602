//! Signals → one shutdown future. The library never installs signal handlers (style rule
//! 2); `main` does, through this module, and hands the future to [`crate::app::run`].

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGTERM, SIGINT or SIGQUIT. A second such signal exits the
/// process at once with status 130 (the workers die with it: PR_SET_PDEATHSIG).
pub async fn first_signal() {
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = quit.recv() => "SIGQUIT",
    };
    tracing::info!(
        signal = name,
        "shutting down gracefully; send it again to exit at once"
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = quit.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}
