//! The `pacer` command line (clap definitions); `main.rs` runs what it parses
//! (RoadRunner's `rr` spellings are mapped onto it by [`crate::rr_cli`]).
//!
//! `pacer serve|config check|version|workers|reset`, with RoadRunner's `-c`, `-w`, `-o`,
//! `--dotenv` and `-s` on every command that reads the config.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LoadOptions;

#[derive(Debug, Parser)]
#[command(
    name = "pacer",
    version,
    about = "Kubernetes-native PHP application server (RoadRunner-compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the PHP workers and serve HTTP, RPC, metrics and status.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Re-read the config file when it changes and apply pool changes live.
        #[arg(long)]
        watch_config: bool,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the version.
    Version,
    /// Show the workers of a running pacer (through its RPC endpoint), like `rr workers`.
    Workers {
        #[command(flatten)]
        config: ConfigArgs,
        /// The pool to show.
        #[arg(default_value = "http")]
        pool: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Refresh every SECS seconds until interrupted.
        #[arg(long, value_name = "SECS")]
        interval: Option<u64>,
        /// RPC address (default: the config's `rpc.listen`, else tcp://127.0.0.1:6001).
        #[arg(long)]
        rpc: Option<String>,
    },
    /// Replace the workers of a running pacer a few at a time (rolling reset).
    Reset {
        #[command(flatten)]
        config: ConfigArgs,
        /// The pool to reset; every resettable pool when left out (as `rr reset`).
        pool: Option<String>,
        #[arg(long)]
        rpc: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (every default filled in), or the errors.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Args, Clone, Debug)]
pub struct ConfigArgs {
    /// Config file (RoadRunner's `.rr.yaml` format).
    #[arg(short = 'c', long = "config", default_value = ".rr.yaml")]
    pub config: PathBuf,
    /// Working directory of pacer and its workers (relative to the current directory, which
    /// is the default), as RoadRunner's `-w`.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<PathBuf>,
    /// Override a config value: `-o http.pool.num_workers=4` (repeatable).
    #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Load environment variables from this file before reading the config.
    #[arg(long, env = "DOTENV_PATH")]
    pub dotenv: Option<PathBuf>,
    /// Print nothing but errors (RoadRunner's `-s`; `reset` stays quiet).
    #[arg(short = 's', long = "silent")]
    pub silent: bool,
}

impl ConfigArgs {
    /// How to load the config these arguments name.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            path: self.config.clone(),
            workdir: self.workdir.clone(),
            overrides: self.overrides.clone(),
            dotenv: self.dotenv.clone(),
        }
    }
}
