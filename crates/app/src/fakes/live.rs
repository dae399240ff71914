//! The live updates' ports in memory: open sockets and tickets, what was pushed to which
//! socket, and what was queued for the webhooks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use matbakh_core::ids::UserId;
use time::OffsetDateTime;

use super::lock;
use crate::ports::{Connection, Connections, Outbox, PortError, PortResult, Push, Pushed};

#[derive(Default)]
pub struct InMemoryLive {
    pub sockets: Mutex<BTreeMap<String, (Connection, OffsetDateTime)>>,
    pub tickets: Mutex<BTreeMap<String, (UserId, OffsetDateTime)>>,
    /// `(connection, body)` in the order pushed.
    pub pushed: Mutex<Vec<(String, String)>>,
    /// Sockets that answer "gone" (closed without `$disconnect`).
    pub gone: Mutex<BTreeSet<String>>,
    /// Sockets whose pushes fail (throttled, say).
    pub failing: Mutex<BTreeSet<String>>,
    pub queued: Mutex<Vec<String>>,
    /// The webhook queue is down.
    pub outbox_down: Mutex<bool>,
    /// How often the open sockets were looked up.
    pub lookups: Mutex<usize>,
    /// Sockets closed by the platform, in order.
    pub disconnected: Mutex<Vec<String>>,
}

impl InMemoryLive {
    /// The bodies pushed to `connection`.
    pub fn pushed_to(&self, connection: &str) -> Vec<String> {
        lock(&self.pushed).iter().filter(|(c, _)| c == connection).map(|(_, b)| b.clone()).collect()
    }

    pub fn queued(&self) -> Vec<String> {
        lock(&self.queued).clone()
    }

    pub fn is_open(&self, connection: &str) -> bool {
        lock(&self.sockets).contains_key(connection)
    }
}

#[async_trait]
impl Connections for InMemoryLive {
    async fn open(&self, c: &Connection, expires_at: OffsetDateTime) -> PortResult<()> {
        lock(&self.sockets).insert(c.id.clone(), (c.clone(), expires_at));
        Ok(())
    }

    async fn close(&self, c: &Connection) -> PortResult<()> {
        lock(&self.sockets).remove(&c.id);
        Ok(())
    }

    async fn of_user(&self, user: &UserId) -> PortResult<Vec<Connection>> {
        *lock(&self.lookups) += 1;
        Ok(lock(&self.sockets).values().filter(|(c, _)| c.user == *user).map(|(c, _)| c.clone()).collect())
    }

    async fn of_admins(&self) -> PortResult<Vec<Connection>> {
        *lock(&self.lookups) += 1;
        Ok(lock(&self.sockets).values().filter(|(c, _)| c.admin).map(|(c, _)| c.clone()).collect())
    }

    async fn issue_ticket(&self, digest: &str, user: &UserId, expires_at: OffsetDateTime) -> PortResult<()> {
        lock(&self.tickets).insert(digest.to_owned(), (user.clone(), expires_at));
        Ok(())
    }

    async fn redeem_ticket(&self, digest: &str, now: OffsetDateTime) -> PortResult<Option<UserId>> {
        Ok(lock(&self.tickets).remove(digest).filter(|(_, until)| now < *until).map(|(user, _)| user))
    }
}

#[async_trait]
impl Push for InMemoryLive {
    async fn push(&self, connection: &str, body: &[u8]) -> PortResult<Pushed> {
        if lock(&self.gone).contains(connection) {
            return Ok(Pushed::Gone);
        }
        if lock(&self.failing).contains(connection) {
            return Err(PortError::Unavailable { operation: "PostToConnection", message: "throttled".into() });
        }
        lock(&self.pushed).push((connection.to_owned(), String::from_utf8_lossy(body).into_owned()));
        Ok(Pushed::Sent)
    }

    async fn disconnect(&self, connection: &str) -> PortResult<()> {
        lock(&self.disconnected).push(connection.to_owned());
        Ok(())
    }
}

#[async_trait]
impl Outbox for InMemoryLive {
    async fn enqueue(&self, bodies: &[String]) -> PortResult<()> {
        if *lock(&self.outbox_down) {
            return Err(PortError::Unavailable { operation: "SendMessageBatch", message: "queue down".into() });
        }
        lock(&self.queued).extend(bodies.iter().cloned());
        Ok(())
    }
}
