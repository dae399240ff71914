//! ClamAV's `clamd`, asked over TCP with `INSTREAM`: the object is streamed from S3 to the
//! scanner chunk by chunk, never held whole. Off unless `CLAMD_ADDR` is set. The
//! [`VirusScanner`] port of `matbakh_app::process`.
//!
//! clamd runs beside the functions (a container in the VPC, say); its `StreamMaxLength` must be
//! at least `CLAMD_MAX_BYTES`. Objects larger than that are not sent; their row says so.

use std::time::Duration;

use async_trait::async_trait;
use matbakh_app::ports::{ObjectStream, PortError, PortResult, Verdict, VirusScanner};
use matbakh_core::limits::setting;
use matbakh_lambda::metrics::{self, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest object sent to clamd (`CLAMD_MAX_BYTES`): the image limit, and four times clamd's own
/// default `StreamMaxLength` (25 MB), which must be raised to match.
pub const DEFAULT_CLAMD_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// How long one scan may take, connection to verdict (`CLAMD_TIMEOUT_SECONDS`).
pub const DEFAULT_CLAMD_TIMEOUT: Duration = Duration::from_secs(60);
/// INSTREAM chunk size; clamd reads chunks of any size up to its limit.
const CHUNK: usize = 64 * 1024;
/// The longest reply read (a signature name is short).
const MAX_REPLY: u64 = 4096;

/// Where clamd listens and how it is used.
#[derive(Debug, Clone)]
pub struct Clamd {
    /// `host:port`.
    pub addr: String,
    pub max_bytes: u64,
    pub timeout: Duration,
}

/// A scan that did not give a verdict: reported, so the record is delivered again (and lands in
/// the DLQ with its alarm if clamd stays away). A file is never passed unscanned by mistake.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("clamd at {addr}: {message}")]
    Unreachable { addr: String, message: String },
    #[error("clamd did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("clamd answered {0:?}")]
    Refused(String),
    #[error(transparent)]
    Read(#[from] PortError),
}

impl From<ScanError> for PortError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Read(e) => e,
            other => PortError::Unavailable { operation: "clamd INSTREAM", message: other.to_string() },
        }
    }
}

#[async_trait]
impl VirusScanner for Clamd {
    async fn scan(&self, object: &mut dyn ObjectStream) -> PortResult<Verdict> {
        let size = object.size();
        if size > self.max_bytes {
            tracing::warn!(size, limit = self.max_bytes, "too large for the virus scan");
            metrics::emit("thumbnail", &[("ScansSkippedTooLarge", 1, Unit::Count)]);
            return Ok(Verdict::NotScanned(format!("over CLAMD_MAX_BYTES ({} bytes)", self.max_bytes)));
        }
        let started = std::time::Instant::now();
        let verdict = self.verdict(object).await?;
        let millis = started.elapsed().as_millis() as u64;
        metrics::emit("thumbnail", &[("ScanMilliseconds", millis, Unit::Milliseconds)]);
        Ok(verdict)
    }
}

impl Clamd {
    /// `None` when `CLAMD_ADDR` is unset or empty; limits from `CLAMD_MAX_BYTES` and
    /// `CLAMD_TIMEOUT_SECONDS`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Clamd>, String> {
        let Some(addr) = lookup("CLAMD_ADDR").map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(Clamd {
            addr,
            max_bytes: setting(&lookup, "CLAMD_MAX_BYTES", DEFAULT_CLAMD_MAX_BYTES)?,
            timeout: Duration::from_secs(setting(&lookup, "CLAMD_TIMEOUT_SECONDS", DEFAULT_CLAMD_TIMEOUT.as_secs())?),
        }))
    }

    /// Streams the object to clamd (whatever its size) and answers its verdict.
    pub async fn verdict(&self, object: &mut dyn ObjectStream) -> Result<Verdict, ScanError> {
        tokio::time::timeout(self.timeout, self.instream(object))
            .await
            .unwrap_or(Err(ScanError::TimedOut(self.timeout)))
    }

    async fn instream(&self, object: &mut dyn ObjectStream) -> Result<Verdict, ScanError> {
        let io = |e: std::io::Error| ScanError::Unreachable { addr: self.addr.clone(), message: e.to_string() };
        let mut conn = TcpStream::connect(&self.addr).await.map_err(io)?;
        // When clamd stops reading early (a size limit), it has already written why: read it.
        let sent = send(&mut conn, object).await;
        let mut reply = Vec::new();
        (&mut conn).take(MAX_REPLY).read_to_end(&mut reply).await.map_err(io)?;
        match (sent, reply.is_empty()) {
            (Err(SendError::Read(e)), _) => Err(ScanError::Read(e)),
            (Err(SendError::Io(e)), true) => Err(io(e)),
            _ => parse_reply(&reply),
        }
    }
}

enum SendError {
    Io(std::io::Error),
    Read(PortError),
}

async fn send(conn: &mut TcpStream, object: &mut dyn ObjectStream) -> Result<(), SendError> {
    conn.write_all(b"zINSTREAM\0").await.map_err(SendError::Io)?;
    while let Some(chunk) = object.next_chunk().await.map_err(SendError::Read)? {
        for part in chunk.chunks(CHUNK) {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes();
            conn.write_all(&len).await.map_err(SendError::Io)?;
            conn.write_all(part).await.map_err(SendError::Io)?;
        }
    }
    conn.write_all(&[0; 4]).await.map_err(SendError::Io)?;
    conn.flush().await.map_err(SendError::Io)
}

/// clamd's answer to INSTREAM: `stream: OK`, `stream: <signature> FOUND`, or `... ERROR`.
pub fn parse_reply(reply: &[u8]) -> Result<Verdict, ScanError> {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim_end_matches(['\0', '\n']).trim();
    let verdict = text.strip_prefix("stream:").map(str::trim);
    match verdict {
        Some("OK") => Ok(Verdict::Clean),
        Some(v) if v.ends_with(" FOUND") && v.len() > " FOUND".len() => {
            Ok(Verdict::Infected(v.trim_end_matches(" FOUND").trim().to_owned()))
        }
        _ => Err(ScanError::Refused(text.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_verdicts_or_refusals() {
        assert_eq!(parse_reply(b"stream: OK\0").unwrap(), Verdict::Clean);
        assert_eq!(
            parse_reply(b"stream: Win.Test.EICAR_HDB-1 FOUND\0").unwrap(),
            Verdict::Infected("Win.Test.EICAR_HDB-1".into())
        );
        for bad in [&b"INSTREAM size limit exceeded. ERROR\0"[..], b"", b"stream: FOUND", b"PONG"] {
            assert!(matches!(parse_reply(bad), Err(ScanError::Refused(_))), "{bad:?}");
        }
    }

    #[test]
    fn off_unless_an_address_is_set() {
        assert!(Clamd::from_lookup(|_| None).unwrap().is_none());
        assert!(Clamd::from_lookup(|_| Some(" ".into())).unwrap().is_none());
        let c = Clamd::from_lookup(|n| (n == "CLAMD_ADDR").then(|| "10.0.0.5:3310".into())).unwrap().unwrap();
        assert_eq!(
            (c.addr.as_str(), c.max_bytes, c.timeout),
            ("10.0.0.5:3310", DEFAULT_CLAMD_MAX_BYTES, DEFAULT_CLAMD_TIMEOUT)
        );
        let bad = Clamd::from_lookup(|n| Some(if n == "CLAMD_ADDR" { "x:1".into() } else { "lots".into() }));
        assert!(bad.unwrap_err().contains("CLAMD_MAX_BYTES"));
    }
}
