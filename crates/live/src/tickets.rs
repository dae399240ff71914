//! `live-tickets`: triggered by API Gateway (HTTP API, JWT authorizer), `POST /v1/live/tickets`:
//! a one-time ticket that opens one socket of the caller's within
//! [`TICKET_TTL_SECONDS`](matbakh_core::live::TICKET_TTL_SECONDS), for clients that would rather
//! not offer their token as a subprotocol. Writes the ticket's digest to the connections table.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use matbakh_api::{ApiError, Caller};
use matbakh_app::live::Entry;
use serde_json::{Value, json};

/// What the tickets route works with.
#[derive(Clone)]
pub struct Tickets {
    pub entry: Entry,
    /// The WebSocket API's URL (`LIVE_URL`, `wss://...`), handed out with the ticket.
    pub url: String,
}

pub type Api = matbakh_api::Api<Tickets>;

/// The function on any implementation of the ports.
pub fn routes(api: Api) -> Router {
    matbakh_api::openapi::serve(served(), api)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    matbakh_api::openapi::part(documented())
}

matbakh_api::routes!(Api; issue);

/// A one-time ticket for a live updates socket
///
/// Opens one socket within `expiresIn` seconds: connect to `url` (the ticket is in it). Used
/// once; a second connect with it is refused.
#[utoipa::path(post, path = "/v1/live/tickets", operation_id = "live_ticket", tag = "live-tickets",
    responses(
        (status = 201, description = "`{ticket, expiresIn, url}`"),
        (status = 401, description = "No valid token"),
    ))]
#[tracing::instrument(name = "live_ticket", skip_all, fields(user = %caller.user))]
async fn issue(State(api): State<Api>, caller: Caller) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (ticket, ttl) = api.cases.entry.ticket(&caller.user).await?;
    let url = format!("{}?ticket={}", api.cases.url, ticket.expose());
    Ok((StatusCode::CREATED, Json(json!({ "ticket": ticket.expose(), "expiresIn": ttl, "url": url }))))
}
