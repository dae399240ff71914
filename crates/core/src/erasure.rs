//! The erase's second pass: what lands under an erased user's keys after their erase read them.
//!
//! An erase deletes what the bucket and the table hold when it reads them. Two writers can land
//! a file of the user's just after: an upload whose presigned URL was handed out before the
//! erase (valid [`crate::limits::DEFAULT_UPLOAD_URL_TTL`], and a PUT started in time may finish
//! later), and a migration copy that checked the erased mark just before it was written (its
//! row and object land seconds later). The erase therefore asks for itself again
//! [`ERASE_AGAIN_AFTER`] later: one message, [`EraseAgain`], through a queue that delays it at
//! most [`MAX_QUEUE_DELAY`] at a time (SQS's ceiling), sent on until it is due.
//!
//! The message names the user (their files are found by their id, under `users/{sub}/`): it is
//! kept in the queue, encrypted, until the second pass has run.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::UserId;

/// How long after an erase its second pass runs: past the life of every upload URL handed out
/// before it (15 minutes) and of a migration copy in flight (the worker's 15-minute timeout),
/// with room for a slow upload that started in time.
pub const ERASE_AGAIN_AFTER: Duration = Duration::from_secs(60 * 60);

/// The longest one message waits in the queue before it is delivered (SQS: 15 minutes).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);

const KIND: &str = "erase-again";

/// "Erase this user again, not before then."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseAgain {
    pub user: UserId,
    pub not_before: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Message {
    kind: String,
    user: String,
    /// Unix seconds.
    not_before: i64,
}

impl EraseAgain {
    /// The second pass of an erase made at `erased_at`.
    pub fn after(user: UserId, erased_at: OffsetDateTime) -> Self {
        EraseAgain { user, not_before: erased_at + ERASE_AGAIN_AFTER }
    }

    /// When the erase this second pass repeats was made (to the second: the message carries
    /// whole seconds).
    pub fn erased_at(&self) -> OffsetDateTime {
        self.not_before - ERASE_AGAIN_AFTER
    }

    /// The queue message: `{"kind":"erase-again","user":...,"notBefore":<unix seconds>}`.
    pub fn to_message(&self) -> String {
        let m = Message {
            kind: KIND.to_owned(),
            user: self.user.to_string(),
            not_before: self.not_before.unix_timestamp(),
        };
        serde_json::to_string(&m).unwrap_or_default()
    }

    /// Reads a queue message; anything else is refused with what is wrong.
    pub fn parse(body: &str) -> Result<Self, String> {
        let m: Message = serde_json::from_str(body).map_err(|e| format!("not an erase-again message: {e}"))?;
        if m.kind != KIND {
            return Err(format!("not an erase-again message: kind {:?}", m.kind));
        }
        let user = UserId::parse(&m.user).map_err(|e| format!("erase-again: {e}"))?;
        let not_before = OffsetDateTime::from_unix_timestamp(m.not_before).map_err(|e| format!("erase-again: {e}"))?;
        Ok(EraseAgain { user, not_before })
    }

    /// How much longer the message must wait at `now`, in whole seconds rounded up (a queue
    /// delays by seconds) and at most [`MAX_QUEUE_DELAY`] at a time: `None` once it is due.
    pub fn wait(&self, now: OffsetDateTime) -> Option<Duration> {
        let left = Duration::try_from(self.not_before - now).ok().filter(|d| !d.is_zero())?;
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(Duration::from_secs(seconds).min(MAX_QUEUE_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_message_reads_back_and_waits_in_steps_the_queue_allows() {
        let at = datetime!(2026-12-06 18:00 UTC);
        let job = EraseAgain::after(UserId::parse("alice").unwrap(), at);
        let body = job.to_message();
        assert_eq!(
            body,
            format!(
                r#"{{"kind":"erase-again","user":"alice","notBefore":{}}}"#,
                (at + ERASE_AGAIN_AFTER).unix_timestamp()
            )
        );
        assert_eq!(EraseAgain::parse(&body), Ok(job.clone()));
        assert_eq!(job.wait(at), Some(MAX_QUEUE_DELAY), "an hour to go: the longest step");
        assert_eq!(job.wait(at + Duration::from_secs(50 * 60)), Some(Duration::from_secs(10 * 60)));
        assert_eq!(job.wait(at + ERASE_AGAIN_AFTER), None, "due");
        let almost = at + ERASE_AGAIN_AFTER - time::Duration::milliseconds(400);
        assert_eq!(job.wait(almost), Some(Duration::from_secs(1)), "never a zero delay before it is due");
        assert_eq!(job.wait(at + Duration::from_secs(2 * 60 * 60)), None);
    }

    #[test]
    fn other_messages_are_refused() {
        for body in [
            r#"{"kind":"redact"}"#,
            r#"{"kind":"erase","user":"alice","notBefore":1}"#,
            r#"{"kind":"erase-again","user":"../x","notBefore":1}"#,
            r#"{"kind":"erase-again","user":"alice"}"#,
            r#"{"kind":"erase-again","user":"alice","notBefore":1,"more":1}"#,
            "not json",
        ] {
            assert!(EraseAgain::parse(body).is_err(), "{body}");
        }
    }
}
