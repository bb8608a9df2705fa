//! The REST use cases of SPEC §3, §5 and §8, one file per resource. Each handler checks what it can
//! on the reactor (routing, JSON, validation, JWT, rate limits) and runs the rest — store calls
//! and argon2 — as one job on a worker, whose [`Response`] travels back over the bus to the
//! waiting connection.

pub mod auth;
mod history;
pub mod notifications;
mod ops;
mod rooms;

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::auth::jwt::{Claims, JwtError};
use crate::bus::ConnRef;
use crate::http::request::Request;
use crate::http::response::{ApiError, Response};
use crate::http::router::Route;
use crate::shared::Shared;
use crate::store::pool::Worker;
use crate::store::StoreError;
use crate::text::Text;

/// What became of a request.
pub enum Handled {
    /// Answer at once.
    Now(Response),
    /// A worker will answer over the bus.
    Pending,
}

impl From<ApiError> for Handled {
    fn from(e: ApiError) -> Handled {
        Handled::Now(e.into_response())
    }
}

/// Who sent a request, as the connection knows it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub conn: ConnRef,
    /// The client address (for rate limits and logs).
    pub ip: &'a str,
    /// Whether the peer is on the loopback interface (for `/metrics`).
    pub is_loopback: bool,
}

/// Serves one REST route (the WebSocket upgrade and the event stream are the reactor's).
pub fn handle(shared: &Arc<Shared>, caller: Caller<'_>, route: Route, req: Request) -> Handled {
    let conn = caller.conn;
    let result = match route {
        Route::Signup => auth::signup(shared, conn, &req),
        Route::Login => auth::login(shared, conn, caller.ip, &req),
        Route::Reissue => auth::reissue(shared, conn, &req),
        Route::Logout => auth::logout(shared, conn, &req),
        Route::Me => auth::me(shared, conn, &req),
        Route::History(room) => history::history(shared, conn, &req, &room),
        Route::NotificationsList => notifications::list(shared, conn, &req),
        Route::NotificationsCreate => notifications::create(shared, conn, &req),
        Route::NotificationRead(id) => notifications::mark_read(shared, conn, &req, &id),
        Route::RoomsList => rooms::list(shared, conn, &req),
        Route::RoomCreate => rooms::create(shared, conn, &req),
        Route::Room(room) => rooms::show(shared, conn, &req, &room),
        Route::RoomInvite(room) => rooms::invite(shared, conn, &req, &room),
        Route::RoomRemove(room, user) => rooms::remove(shared, conn, &req, &room, &user),
        Route::RoomRead(room) => rooms::mark_read(shared, conn, &req, &room),
        Route::DirectRoom(user) => rooms::direct(shared, conn, &req, &user),
        Route::Health => Ok(ops::health(shared)),
        Route::Metrics => ops::metrics(shared, caller.is_loopback),
        Route::WebClient(path) => Ok(Handled::Now(crate::web::respond(&shared.config, &path))),
        Route::Preflight => Ok(Handled::Now(Response::text(204, "text/plain", Vec::new()))),
        Route::WsChat | Route::NotificationStream => Err(ApiError::Internal),
    };
    result.unwrap_or_else(Handled::from)
}

type Outcome = Result<Handled, ApiError>;

/// The answer for a store failure that the handler has no better word for.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError::Conflict(Text::AlreadyExists),
        StoreError::Unavailable(_) => ApiError::ServiceUnavailable,
        StoreError::Other(_) => ApiError::Internal,
    }
}

/// Which worker threads run a job.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Store queries.
    General,
    /// Jobs that compute argon2 (login, signup), on the low-priority threads.
    Hashing,
}

/// Runs `f` on a worker of `lane` and sends its response to `conn`.
fn run(
    shared: &Arc<Shared>,
    conn: ConnRef,
    lane: Lane,
    f: impl FnOnce(&mut Worker, &Shared) -> Result<Response, ApiError> + Send + 'static,
) -> Outcome {
    if !shared.pool.is_up() {
        return Err(ApiError::ServiceUnavailable);
    }
    let s = Arc::clone(shared);
    let job = Box::new(move |worker: &mut Worker| {
        let response = f(worker, &s).unwrap_or_else(ApiError::into_response);
        s.bus.reply(conn, response);
    });
    let submitted = if lane == Lane::Hashing {
        shared.pool.submit_hashing(job)
    } else {
        shared.pool.submit(job)
    };
    submitted.map_err(|_| ApiError::ServiceUnavailable)?;
    Ok(Handled::Pending)
}

/// The JSON body, with 415 for another content type and 400 naming what is wrong (never the
/// parser's own wording).
fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let json = req
        .content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(&req.body).map_err(|e| ApiError::InvalidRequest(body_error(&e)))
}

/// A person's account of why a JSON body was refused: the field when the parser names one.
fn body_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    if e.classify() != Category::Data {
        return Text::BodyNotJson.ko().to_owned();
    }
    // serde_json names the field in these two cases only, as "missing field `name`".
    let text = e.to_string();
    let field_after = |prefix: &str| {
        let rest = text.strip_prefix(prefix)?.strip_prefix('`')?;
        rest.split_once('`').map(|(name, _)| name.to_owned())
    };
    if let Some(field) = field_after("missing field ") {
        Text::FieldRequired.about(&field)
    } else if let Some(field) = field_after("unknown field ") {
        Text::FieldUnknown.about(&field)
    } else {
        format!("{}: {}", Text::BodyInvalid.ko(), Text::FieldWrongType.ko())
    }
}

/// The answer for a token that did not verify.
pub fn jwt_error(e: JwtError) -> ApiError {
    match e {
        JwtError::Expired => ApiError::TokenExpired,
        JwtError::Invalid | JwtError::WrongType => ApiError::InvalidToken,
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &Request) -> Option<&str> {
    crate::auth::jwt::bearer_token(req.authorization.as_deref()?)
}

/// The claims of an access token, or the 401 it deserves.
pub fn verify_access(shared: &Shared, token: &str) -> Result<Claims, ApiError> {
    shared.verify_access(token).map_err(jwt_error)
}

/// The claims of the request's access token: 401 `UNAUTHORIZED` without one.
fn authenticate(shared: &Shared, req: &Request) -> Result<Claims, ApiError> {
    let token = bearer_token(req).ok_or(ApiError::Unauthorized(Text::AuthenticationRequired))?;
    verify_access(shared, token)
}

/// A non-negative id query parameter.
fn id_param(req: &Request, name: &'static str) -> Result<Option<i64>, ApiError> {
    match req.query_param(name) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::InvalidRequest(Text::NonNegativeInteger.about(name))),
        },
    }
}

/// `limit` in 1..=500, default 50.
fn limit_param(req: &Request) -> Result<u32, ApiError> {
    match req.query_param("limit") {
        None => Ok(50),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(ApiError::InvalidRequest(Text::LimitRange.about("limit"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Credentials {
        username: String,
        password: String,
    }

    fn refusal(body: &str) -> String {
        let req = Request {
            content_type: Some("application/json".into()),
            body: body.as_bytes().to_vec(),
            ..Request::default()
        };
        match json_body::<Credentials>(&req) {
            Err(ApiError::InvalidRequest(m)) => m,
            other => panic!("expected 400 for {body}, got {other:?}"),
        }
    }

    #[test]
    fn body_errors_name_the_field_not_the_parser() {
        assert_eq!(refusal(r#"{"username":"a"}"#), "password: 필수 항목입니다");
        assert_eq!(
            refusal(r#"{"username":"a","password":"b","x":1}"#),
            "x: 알 수 없는 항목입니다"
        );
        assert_eq!(refusal("{"), "요청 본문이 올바른 JSON이 아닙니다");
        let wrong_type = refusal(r#"{"username":1,"password":"b"}"#);
        assert!(!wrong_type.contains("line"), "{wrong_type}");
        assert!(!wrong_type.contains("invalid type"), "{wrong_type}");
    }
}
