//! Why a configuration was refused. Every message names the file or the dotted key, the
//! offending value and what was expected, so `pacer config check` alone tells a user what
//! to fix.

use std::path::PathBuf;

/// A configuration that cannot be used. `pacer` exits with [`ConfigError::EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} not found", path.display())]
    NotFound { path: PathBuf },

    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: YAML syntax error at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// The file as a whole: no `version`, an unsupported one, not a mapping.
    #[error("{}: {reason}", path.display())]
    Document { path: PathBuf, reason: String },

    /// A value of the wrong type or out of range.
    #[error("{key}: {value} is not {expected}")]
    Invalid {
        /// Dotted path, e.g. `http.pool.num_workers`.
        key: String,
        /// The value as written (strings quoted).
        value: String,
        expected: String,
    },

    #[error("{key} is required: {hint}")]
    Missing { key: String, hint: String },

    /// A `-o key.path=value` override that cannot be applied.
    #[error("-o {arg:?}: {reason}")]
    Override { arg: String, reason: String },

    #[error("dotenv file {}: {reason}", path.display())]
    Dotenv { path: PathBuf, reason: String },

    #[error("included file {}: {reason}", path.display())]
    Include { path: PathBuf, reason: String },

    /// More than one of the above, in the order they were found.
    #[error("{} configuration errors:\n  {}", .0.len(), join(.0))]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// The exit code for a bad configuration (`EX_USAGE`, like the rest of the CLI's
    /// usage errors).
    pub const EXIT_CODE: i32 = 64;

    /// The individual errors (one, or each of [`ConfigError::Several`]).
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(all) => all.iter().collect(),
            one => vec![one],
        }
    }

    pub(crate) fn invalid(key: &str, value: String, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            value,
            expected: expected.to_string(),
        }
    }

    /// `Ok` for no errors; one error as is; several as [`ConfigError::Several`].
    pub(crate) fn check(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        if errors.is_empty() {
            return Ok(());
        }
        Err(match <[ConfigError; 1]>::try_from(errors) {
            Ok([one]) => one,
            Err(all) => ConfigError::Several(all),
        })
    }
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}
