//! The one error type of the migration: usage errors (exit 2), failed checks (exit 1), and
//! what the services answered, classed retryable or permanent.

use matbakh_aws::AwsError;
use matbakh_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The command or its input is wrong; nothing was changed.
    #[error("{0}")]
    Usage(String),
    /// The source cannot be listed.
    #[error("source: {0}")]
    Source(String),
    /// A local file could not be read or written (a sort run, the manifest): a full disk reads
    /// as this, never as a usage error.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A check found problems (verify, collisions); the message says which.
    #[error("{0}")]
    Check(String),
    #[error(transparent)]
    Rule(#[from] CoreError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl MigrateError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, MigrateError::Aws(e) if e.is_retryable())
    }

    /// The process exit code: 2 for usage, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            MigrateError::Usage(_) | MigrateError::Rule(_) => 2,
            _ => 1,
        }
    }
}
