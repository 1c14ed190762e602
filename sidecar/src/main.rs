//! `pacer` — parse the command line (`cli.rs`), set up logging and the runtime, run, and map errors
//! to exit codes (64 = bad configuration or usage). Everything else lives in the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pacer::app::{self, Listeners, RunOptions};
use pacer::cli::{Cli, Command, ConfigArgs, ConfigCommand};
use pacer::config::{self, Loaded};

/// Exit code for bad configuration or usage (EX_USAGE from sysexits.h).
const EXIT_CONFIG: u8 = 64;
/// Exit code when a service cannot run (EX_UNAVAILABLE), e.g. RPC not reachable.
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code for a failure while running (EX_SOFTWARE).
const EXIT_SOFTWARE: u8 = 70;

/// mimalloc instead of glibc's malloc: allocation was 11 % of pacer's own instructions
/// per request (callgrind, `bench/profile.sh`), most of it glibc's slow path for the
/// blocks above its thread cache (hyper's header arrays with `max_header_count` above
/// 100, read buffers, response heads). Numbers in `bench/notes.md`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // RoadRunner's command line too (`rr -c .rr.yaml -o … serve`, `rr --version`), for
    // tools that drive `rr`, such as Laravel Octane.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(line) =
        pacer::rr_cli::version_line(&args, pacer::worker::RR_VERSION, &|k| std::env::var(k).ok())
    {
        println!("{line}");
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse_from(pacer::rr_cli::move_global_flags(args));
    match cli.command {
        Command::Version => {
            println!(
                "pacer {} (RoadRunner-compatible {})",
                env!("CARGO_PKG_VERSION"),
                pacer::worker::RR_VERSION
            );
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match config::load(&config.load_options()) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    eprintln!("warning: {warning}");
                }
                print!("{}", config::effective_yaml(&loaded.config));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve {
            config,
            watch_config,
        } => {
            let options = config.load_options();
            let loaded = match config::load(&options) {
                Ok(l) => l,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            serve(
                loaded,
                RunOptions {
                    watch_config,
                    load: options,
                },
            )
        }
        Command::Workers {
            config,
            pool,
            json,
            interval,
            rpc,
        } => {
            let addr = rpc_address(&config, rpc);
            client_command(async move {
                let mut out = std::io::stdout();
                pacer::rpc::cli::cli_workers(
                    &addr,
                    Some(&pool),
                    json,
                    interval.map(Duration::from_secs),
                    &mut out,
                )
                .await
            })
        }
        Command::Reset { config, pool, rpc } => {
            let addr = rpc_address(&config, rpc);
            let silent = config.silent;
            client_command(async move {
                if silent {
                    pacer::rpc::cli::cli_reset(&addr, pool.as_deref(), &mut std::io::sink()).await
                } else {
                    let mut out = std::io::stdout();
                    pacer::rpc::cli::cli_reset(&addr, pool.as_deref(), &mut out).await
                }
            })
        }
    }
}

/// The RPC address for client commands: `--rpc`, else `-o rpc.listen=…` (even when the
/// config file is empty or missing, as with `rr reset -o rpc.listen=… -s`), else the
/// config's (if it loads), else RoadRunner's default.
fn rpc_address(config: &ConfigArgs, flag: Option<String>) -> String {
    flag.or_else(|| {
        config::override_value(&config.overrides, "rpc.listen", &|k| std::env::var(k).ok())
    })
    .or_else(|| {
        config::load(&config.load_options())
            .ok()?
            .config
            .rpc
            .map(|r| r.listen.to_string())
    })
    .unwrap_or_else(|| "tcp://127.0.0.1:6001".to_string())
}

fn client_command<E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(EXIT_SOFTWARE);
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

fn serve(loaded: Loaded, options: RunOptions) -> ExitCode {
    let config = loaded.config;
    if let Err(error) = init_logging(&config.logs) {
        eprintln!("error: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "config");
    }
    // Relative paths in the config (and the workers) start at the working directory,
    // as with RoadRunner.
    if let Err(error) = std::env::set_current_dir(&config.workdir) {
        tracing::error!(%error, dir = %config.workdir.display(), "cannot change into the working directory");
        return ExitCode::from(EXIT_CONFIG);
    }
    let threads = config.pacer.runtime.threads;
    let runtime = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    let result = runtime.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        app::run(
            config,
            listeners,
            options,
            pacer::shutdown::first_signal(),
            None,
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(
            error @ (app::AppError::Bind { .. }
            | app::AppError::NoHttp
            | app::AppError::Static { .. }
            | app::AppError::Tls(_)
            | app::AppError::Headers(_)
            | app::AppError::Sendfile(_)
            | app::AppError::Plugin(pacer::plugin::PluginError::Config { .. })),
        ) => {
            tracing::error!(%error, "cannot start");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(%error, "pacer failed");
            ExitCode::from(EXIT_SOFTWARE)
        }
    }
}

fn init_logging(logs: &config::LogsConfig) -> Result<(), String> {
    for warning in pacer::logging::init(logs)? {
        tracing::warn!(%warning, "config");
    }
    Ok(())
}
