//! `pacer-operator`: parse the command line, set up logging, run, map errors to exit codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pacer_operator::controller::ControllerSettings;
use pacer_operator::leader::LeaseConfig;
use pacer_operator::metrics_source::http::HttpClient;
use pacer_operator::metrics_source::{Direct, Prometheus, Router};
use pacer_operator::resources::{MANAGER, SidecarDefaults};
use pacer_operator::telemetry::{self, Metrics};
use pacer_operator::{Operator, OperatorConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Exit code for bad configuration (EX_USAGE / EX_CONFIG family, as pacer uses).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "pacer-operator",
    version,
    about = "Kubernetes operator for Pacer PHP application servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (the default).
    Run(RunArgs),
    /// Print the PhpAppServer CustomResourceDefinition as YAML.
    Crd,
    /// Copy a file atomically and make it executable (the pods' init container uses it to
    /// copy the pacer binary out of the Pacer image, which has no shell).
    Install {
        /// Source file.
        #[arg(long, default_value = "/pacer")]
        from: PathBuf,
        /// Destination file.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// With all namespaces watched: reconcile only apps in namespaces whose labels match
    /// this label selector (e.g. `pacer.dev/enabled=true`).
    #[arg(long, env = "WATCH_NAMESPACE_SELECTOR")]
    namespace_selector: Option<String>,
    /// Pacer image the init container copies pacer from, for apps that do not name one.
    #[arg(long, env = "PACER_SIDECAR_IMAGE", default_value = concat!("pacer:", env!("CARGO_PKG_VERSION")))]
    sidecar_image: String,
    /// Command of that init container, as a JSON array; its last element is the
    /// destination inside /pacer-install.
    #[arg(
        long,
        env = "PACER_INSTALL_COMMAND",
        default_value = r#"["/pacer-operator","install","--from","/pacer","--to","/pacer-install/pacer"]"#
    )]
    install_command: String,
    /// Address of /metrics and /health.
    #[arg(long, env = "PACER_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Reconciles at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "pacer-operator")]
    lease_name: String,
    /// This replica's identity in the Lease and in Events (default: hostname-pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Deliver memory-limit changes by rolling the pods, never by in-place resize.
    #[arg(long, env = "PACER_NO_IN_PLACE_RESIZE")]
    no_in_place_resize: bool,
    /// Prometheus URLs (prefixes: scheme, host, optional port and path) that apps may name
    /// in tuning.metrics.prometheusUrl, comma-separated; none by default.
    #[arg(long, env = "PACER_PROMETHEUS_ALLOWED_URLS", value_delimiter = ',')]
    prometheus_allowed_urls: Vec<String>,
    /// Timeout of one metrics scrape or PromQL query, seconds.
    #[arg(long, default_value_t = 5)]
    scrape_timeout: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum LogFormat {
    Json,
    Text,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn identity(args: &RunArgs) -> String {
    args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "pacer-operator".to_owned());
        format!("{host}-{}", std::process::id())
    })
}

async fn run(args: RunArgs) -> Result<()> {
    let install_command: Vec<String> = serde_json::from_str(&args.install_command)
        .context("--install-command must be a JSON array of strings")?;
    let identity = identity(&args);
    let config = OperatorConfig {
        controller: ControllerSettings {
            field_manager: MANAGER.to_owned(),
            namespaces: args
                .namespace
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
            namespace_selector: args.namespace_selector.clone().filter(|s| !s.is_empty()),
            concurrency: args.concurrency,
            sidecar: SidecarDefaults {
                image: args.sidecar_image.clone(),
                install_command,
            },
            instance: identity.clone(),
            in_place_resize: !args.no_in_place_resize,
            prometheus_allowed_urls: args
                .prometheus_allowed_urls
                .iter()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
        },
        lease: LeaseConfig::new(&args.lease_namespace, &args.lease_name, &identity),
    };
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let http = HttpClient::new(Duration::from_secs(args.scrape_timeout))?;
    let source = Arc::new(Router::new(
        Direct::new(http.clone()),
        Prometheus::new(http),
    ));
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(telemetry::serve(
        listener,
        metrics.clone(),
        shutdown.clone(),
    ));
    let signal = shutdown.clone();
    tasks.spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    let result = Operator::new(client, config, source, metrics)
        .run(shutdown.clone())
        .await;
    shutdown.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
    result.map_err(Into::into)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => match pacer_crds::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("pacer-operator: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Install { from, to }) => match pacer_operator::install::install(&from, &to) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("pacer-operator install: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run(args)) => run_main(args),
        None => run_main(cli.run),
    }
}

fn run_main(args: RunArgs) -> ExitCode {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("pacer-operator: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "pacer-operator failed");
            eprintln!("pacer-operator: {error:#}");
            let config_error = error.chain().any(|e| {
                e.downcast_ref::<serde_json::Error>().is_some()
                    || e.downcast_ref::<kube::config::KubeconfigError>().is_some()
                    || e.downcast_ref::<kube::config::InferConfigError>().is_some()
            });
            if config_error {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
