//! `custom-pacer`: pacer with one extra plugin, the way a team adds its own service —
//! as RoadRunner is rebuilt with extra plugins. Everything but the plugin is pacer's
//! library: config loading, logging, listeners and [`pacer::app::run`].
//!
//! ```sh
//! cargo run -p pacer-custom-service -- serve -c examples/custom-service/.rr.yaml
//! ```

mod greeter;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pacer::app::{self, Listeners, RunOptions};
use pacer::config::{self, LoadOptions};

#[derive(Parser)]
#[command(name = "custom-pacer", about = "pacer with a greeter plugin")]
enum Cli {
    /// Serve, as `pacer serve`.
    Serve {
        #[arg(short = 'c', long = "config", default_value = ".rr.yaml")]
        config: PathBuf,
        #[arg(short = 'w', long = "workdir")]
        workdir: Option<PathBuf>,
        #[arg(short = 'o', long = "override")]
        overrides: Vec<String>,
    },
}

fn main() -> ExitCode {
    let Cli::Serve {
        config,
        workdir,
        overrides,
    } = Cli::parse();
    let load = LoadOptions {
        path: config,
        workdir,
        overrides,
        ..LoadOptions::default()
    };
    let mut loaded = match config::load(&load) {
        Ok(l) => l,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(64);
        }
    };
    let greeter = Arc::new(greeter::Greeter::default());
    // The plugin claims its section: no "unknown section" warning for it.
    let claimed = config::section_warning("greeter");
    loaded.warnings.retain(|w| *w != claimed);
    let config = loaded.config;
    match pacer::logging::init(&config.logs) {
        Ok(warnings) => {
            for warning in warnings.iter().chain(&loaded.warnings) {
                tracing::warn!(%warning, "config");
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(64);
        }
    }
    if let Err(error) = std::env::set_current_dir(&config.workdir) {
        eprintln!("error: {}: {error}", config.workdir.display());
        return ExitCode::from(64);
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(70);
    };
    let result = runtime.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        let options = RunOptions {
            load,
            ..RunOptions::default()
        };
        app::run_with_plugins(
            config,
            listeners,
            options,
            vec![greeter],
            pacer::shutdown::first_signal(),
            None,
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ app::AppError::Plugin(pacer::plugin::PluginError::Config { .. })) => {
            eprintln!("error: {error}");
            ExitCode::from(64)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(70)
        }
    }
}
