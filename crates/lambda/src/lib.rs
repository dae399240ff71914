//! What every function shares with the Lambda runtime, and nothing else (no SDK, no HTTP):
//! metrics as Embedded Metric Format log lines ([`metrics`]), and the SQS batch loop with one
//! span per record and partial batch failures ([`sqs`]).

pub mod metrics;
pub mod sqs;
