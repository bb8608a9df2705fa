//! Notifications over REST: list, send a direct one, mark one read; and the checks that open an
//! SSE stream (`GET /notifications/stream`), whose socket side lives in the reactor.

use std::sync::Arc;

use serde::Deserialize;

use super::{
    authenticate, bearer_token, id_param, json_body, limit_param, run, store_error, verify_access, Lane, Outcome,
};
use crate::auth::jwt::Claims;
use crate::auth::validate;
use crate::bus::ConnRef;
use crate::clock::now_ms;
use crate::http::request::Request;
use crate::http::response::{ApiError, Response};
use crate::notify;
use crate::shared::Shared;
use crate::store::model::NotificationQuery;
use crate::text::Text;
use crate::views::NotificationView;

pub(super) fn list(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    let unread_only = match req.query_param("unread").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::InvalidRequest(Text::TrueOrFalse.about("unread"))),
    };
    let query = NotificationQuery {
        unread_only,
        limit: limit_param(req)?,
        before: id_param(req, "before")?,
    };
    run(shared, conn, Lane::General, move |worker, _| {
        let list = worker
            .with(|db| db.list_notifications(&claims.sub, query))
            .map_err(store_error)?;
        let views: Vec<NotificationView> = list.iter().map(NotificationView::from).collect();
        Ok(Response::ok(200, Text::NotificationsListed.ko(), views))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectNotification {
    recipient: String,
    message: String,
}

pub(super) fn create(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    let body: DirectNotification = json_body(req)?;
    if validate::username(&body.recipient).is_err() {
        return Err(ApiError::NotFound(Text::RecipientNotFound));
    }
    validate::chat_message(&body.message, shared.config.chat.max_message_chars)
        .map_err(|e| ApiError::InvalidRequest(format!("message: {e}")))?;
    if let Err(wait) = shared.check_direct_rate(&claims.sub) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    run(
        shared,
        conn,
        Lane::General,
        move |worker, shared| match notify::send_direct(worker, &shared.bus, claims.sub, body.recipient, body.message)
            .map_err(store_error)?
        {
            Some(n) => Ok(Response::ok(
                201,
                Text::NotificationSent.ko(),
                NotificationView::from(&n),
            )),
            None => Err(ApiError::NotFound(Text::RecipientNotFound)),
        },
    )
}

pub(super) fn mark_read(shared: &Arc<Shared>, conn: ConnRef, req: &Request, id: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let id: i64 = match id.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(ApiError::InvalidRequest(Text::PositiveInteger.about("id"))),
    };
    run(shared, conn, Lane::General, move |worker, _| {
        let marked = worker
            .with(|db| db.mark_notification_read(id, &claims.sub, now_ms()))
            .map_err(store_error)?;
        if !marked {
            return Err(ApiError::NotFound(Text::NotificationNotFound));
        }
        let found = worker
            .with(|db| db.notifications_after(&claims.sub, id - 1, 1))
            .map_err(store_error)?;
        match found.first().filter(|n| n.id == id) {
            Some(n) => Ok(Response::ok(
                200,
                Text::NotificationMarkedRead.ko(),
                NotificationView::from(n),
            )),
            None => Err(ApiError::NotFound(Text::NotificationNotFound)),
        }
    })
}

/// A stream request that passed its checks.
#[derive(Debug)]
pub struct StreamRequest {
    pub claims: Claims,
    /// Replay every notification after this id first (`Last-Event-ID` / `lastEventId`).
    pub replay_after: Option<i64>,
}

/// Checks `GET /notifications/stream`: one access token (Bearer header or `access_token`, not
/// both: EventSource cannot set headers) and an optional non-negative `Last-Event-ID`.
pub fn stream_request(shared: &Shared, req: &Request) -> Result<StreamRequest, ApiError> {
    let token = match (bearer_token(req), req.query_param("access_token")) {
        (Some(_), Some(_)) => return Err(ApiError::InvalidRequest(Text::TokenGivenTwice.ko().into())),
        (Some(t), None) => t.to_owned(),
        (None, Some(t)) => t,
        (None, None) => return Err(ApiError::Unauthorized(Text::AuthenticationRequired)),
    };
    let claims = verify_access(shared, &token)?;
    let replay_after = match req.last_event_id.clone().or_else(|| req.query_param("lastEventId")) {
        None => None,
        Some(v) if v.trim().is_empty() => None,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(ApiError::InvalidRequest(
                    Text::NonNegativeInteger.about("Last-Event-ID"),
                ))
            }
        },
    };
    Ok(StreamRequest { claims, replay_after })
}
