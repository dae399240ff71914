//! What every queue-fed function shares with the Lambda runtime, and nothing else (no SDK, no
//! HTTP): the SQS batch loop with one span per record and partial batch failures.

pub mod sqs;
