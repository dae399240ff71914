//! What every function shares with the Lambda runtime, and nothing else (no SDK, no HTTP):
//! metrics as Embedded Metric Format log lines ([`metrics`]), the SQS batch loop with one
//! span per record and partial batch failures ([`sqs`]), and the log subscriber ([`logs`]).

pub mod logs;
pub mod metrics;
pub mod sqs;
