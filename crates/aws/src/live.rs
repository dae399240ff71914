//! The live updates' connections table (`CONNECTIONS_TABLE`): open sockets and connect tickets,
//! all removed by DynamoDB TTL (`ttl`) if nobody removes them first.
//!
//! | item        | pk                 | sk            | attributes                        |
//! |-------------|--------------------|---------------|-----------------------------------|
//! | socket      | `USER#{sub}`       | `CONN#{id}`   | `connectionId`, `admin`, `ttl`    |
//! | admin's     | `ADMINS`           | `CONN#{id}`   | `connectionId`, `user`, `ttl`     |
//! | ticket      | `TICKET#{digest}`  | `TICKET`      | `user`, `expiresAt`, `ttl`        |
//!
//! A user's sockets are one Query, the administrators' another; a ticket is redeemed by
//! deleting it (DynamoDB serialises deletes of an item: one caller gets its old attributes).
//! The webhook queue's side ([`Outbox`] on [`Queue`]) is here too.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use matbakh_app::ports::{Connection, Connections, Outbox, PortResult};
use matbakh_core::ids::UserId;
use time::OffsetDateTime;

use crate::dynamo::{get_u64, n, opt_str, query_all, s};
use crate::error::AwsError;
use crate::queue::Queue;
use crate::schema::{Item, PK, SK, item, key, user_pk};

const ADMINS: &str = "ADMINS";

#[derive(Clone, Debug)]
pub struct LiveTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn socket_sk(id: &str) -> String {
    format!("CONN#{id}")
}

fn ticket_pk(digest: &str) -> String {
    format!("TICKET#{digest}")
}

impl LiveTable {
    pub fn new(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        LiveTable { client: crate::dynamo::client(sdk), table: table.into() }
    }

    /// The items a socket is kept as (its user's; the administrators' too for an admin).
    fn socket_items(c: &Connection, ttl: i64) -> Vec<Item> {
        let mine = item(
            key(user_pk(&c.user), socket_sk(&c.id)),
            [
                ("connectionId".to_owned(), s(&c.id)),
                ("admin".to_owned(), AttributeValue::Bool(c.admin)),
                ("ttl".to_owned(), n(ttl)),
            ],
        );
        let admins = c.admin.then(|| {
            item(
                key(ADMINS, socket_sk(&c.id)),
                [
                    ("connectionId".to_owned(), s(&c.id)),
                    ("user".to_owned(), s(c.user.to_string())),
                    ("ttl".to_owned(), n(ttl)),
                ],
            )
        });
        std::iter::once(mine).chain(admins).collect()
    }

    /// Writes `items` all or none (a socket's user item and, for an administrator, its
    /// `ADMINS` item).
    async fn transact(
        &self,
        items: impl IntoIterator<Item = Result<TransactWriteItem, aws_sdk_dynamodb::error::BuildError>>,
    ) -> Result<(), AwsError> {
        let items = items.into_iter().collect::<Result<Vec<_>, _>>()?;
        crate::dynamo::transact(&self.client, items).await.map_err(|e| AwsError::from_sdk("TransactWriteItems", e))?;
        Ok(())
    }

    async fn sockets(
        &self,
        pk: String,
        user: impl Fn(&Item) -> Option<UserId>,
        admin: bool,
    ) -> Result<Vec<Connection>, AwsError> {
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :conn)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":conn", s("CONN#")),
        )
        .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(Connection {
                    id: opt_str(item, "connectionId")?.to_owned(),
                    user: user(item)?,
                    admin: admin || item.get("admin").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
                })
            })
            .collect())
    }
}

#[async_trait]
impl Connections for LiveTable {
    async fn open(&self, c: &Connection, expires_at: OffsetDateTime) -> PortResult<()> {
        let puts = Self::socket_items(c, expires_at.unix_timestamp()).into_iter().map(|socket| {
            let put = Put::builder().table_name(&self.table).set_item(Some(socket)).build()?;
            Ok(TransactWriteItem::builder().put(put).build())
        });
        Ok(self.transact(puts).await?)
    }

    async fn close(&self, c: &Connection) -> PortResult<()> {
        let keys = [key(user_pk(&c.user), socket_sk(&c.id)), key(ADMINS, socket_sk(&c.id))];
        let deletes = keys.into_iter().map(|k| {
            let delete = Delete::builder().table_name(&self.table).set_key(Some(k)).build()?;
            Ok(TransactWriteItem::builder().delete(delete).build())
        });
        Ok(self.transact(deletes).await?)
    }

    async fn of_user(&self, user: &UserId) -> PortResult<Vec<Connection>> {
        let owner = user.clone();
        Ok(self.sockets(user_pk(user), move |_| Some(owner.clone()), false).await?)
    }

    async fn of_admins(&self) -> PortResult<Vec<Connection>> {
        let user = |item: &Item| opt_str(item, "user").and_then(|u| UserId::parse(u).ok());
        Ok(self.sockets(ADMINS.to_owned(), user, true).await?)
    }

    async fn issue_ticket(&self, digest: &str, user: &UserId, expires_at: OffsetDateTime) -> PortResult<()> {
        let ticket = item(
            key(ticket_pk(digest), "TICKET"),
            [
                ("user".to_owned(), s(user.to_string())),
                ("expiresAt".to_owned(), n(expires_at.unix_timestamp())),
                ("ttl".to_owned(), n(expires_at.unix_timestamp() + 60)),
            ],
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(ticket))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutItem", e))?;
        Ok(())
    }

    async fn redeem_ticket(&self, digest: &str, now: OffsetDateTime) -> PortResult<Option<UserId>> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(ticket_pk(digest), "TICKET")))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteItem", e))?;
        let Some(old) = out.attributes() else { return Ok(None) };
        let usable = get_u64(old, "expiresAt").is_some_and(|until| now.unix_timestamp() < until as i64);
        Ok(opt_str(old, "user").filter(|_| usable).and_then(|u| UserId::parse(u).ok()))
    }
}

#[async_trait]
impl Outbox for Queue {
    async fn enqueue(&self, bodies: &[String]) -> PortResult<()> {
        Ok(self.send_all(bodies).await?)
    }
}
