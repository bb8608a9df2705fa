//! The REST use cases of SPEC §3 and §5. Each handler checks what it can on the reactor (routing,
//! JSON, validation, JWT, rate limits) and runs the rest — store calls and argon2 — as one job on
//! a worker, whose [`Response`] travels back through the hub to the waiting connection.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::jwt::{random_id, token_hash, Claims, JwtError, TokenType};
use crate::auth::{password, validate};
use crate::clock::{now_ms, now_secs};
use crate::http::request::{percent_decode, Request};
use crate::http::response::{ApiError, Response};
use crate::http::router::Route;
use crate::hub::ConnRef;
use crate::shared::Shared;
use crate::store::model::{HistoryQuery, NewNotification, NewRefreshToken, NotificationQuery, SpendOutcome};
use crate::store::pool::Worker;
use crate::store::StoreError;
use crate::views::{self, ChatView, NotificationView, UserView};

/// What became of a request.
pub enum Handled {
    /// Answer at once.
    Now(Response),
    /// A worker will answer through the hub.
    Pending,
}

impl From<ApiError> for Handled {
    fn from(e: ApiError) -> Handled {
        Handled::Now(e.into_response())
    }
}

/// Serves one REST route (the WebSocket upgrade and the event stream are the reactor's).
pub fn handle(
    shared: &Arc<Shared>,
    conn: ConnRef,
    client_ip: &str,
    is_loopback: bool,
    route: Route,
    req: Request,
) -> Handled {
    let result = match route {
        Route::Signup => signup(shared, conn, &req),
        Route::Login => login(shared, conn, client_ip, &req),
        Route::Reissue => reissue(shared, conn, &req),
        Route::Logout => logout(shared, conn, &req),
        Route::Me => me(shared, conn, &req),
        Route::History(room) => history(shared, conn, &req, &room),
        Route::NotificationsList => list_notifications(shared, conn, &req),
        Route::NotificationsCreate => create_notification(shared, conn, &req),
        Route::NotificationRead(id) => mark_read(shared, conn, &req, &id),
        Route::Health => Ok(health(shared)),
        Route::Metrics => metrics(shared, is_loopback),
        Route::WebClient(path) => Ok(Handled::Now(crate::web::respond(&shared.config, &path))),
        Route::Preflight => Ok(Handled::Now(Response::text(204, "text/plain", Vec::new()))),
        Route::WsChat | Route::NotificationStream => Err(ApiError::Internal),
    };
    result.unwrap_or_else(Handled::from)
}

type Outcome = Result<Handled, ApiError>;

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError::Conflict("이미 존재합니다"),
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
        s.hub.reply(conn, response);
    });
    let submitted = if lane == Lane::Hashing {
        shared.pool.submit_hashing(job)
    } else {
        shared.pool.submit(job)
    };
    submitted.map_err(|_| ApiError::ServiceUnavailable)?;
    Ok(Handled::Pending)
}

/// The JSON body, with 415 for another content type and 400 naming what is wrong.
fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let json = req
        .content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::InvalidRequest(format!("요청 본문이 올바르지 않습니다: {e}")),
            _ => ApiError::InvalidRequest("요청 본문이 올바른 JSON이 아닙니다".into()),
        }
    })
}

fn jwt_error(e: JwtError) -> ApiError {
    match e {
        JwtError::Expired => ApiError::TokenExpired,
        JwtError::Invalid | JwtError::WrongType => ApiError::InvalidToken,
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &Request) -> Option<&str> {
    crate::auth::jwt::bearer_token(req.authorization.as_deref()?)
}

/// The claims of the request's access token: 401 `UNAUTHORIZED` without one.
fn authenticate(shared: &Shared, req: &Request) -> Result<Claims, ApiError> {
    let token = bearer_token(req).ok_or(ApiError::Unauthorized("인증이 필요합니다"))?;
    shared.verify_access(token).map_err(jwt_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenPair {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: i64,
}

fn signup(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let body: Credentials = json_body(req)?;
    validate::username(&body.username).map_err(|e| ApiError::InvalidRequest(format!("username: {e}")))?;
    validate::password(&body.password).map_err(|e| ApiError::InvalidRequest(format!("password: {e}")))?;
    run(shared, conn, Lane::Hashing, move |worker, _| {
        let hash = password::hash_password(&body.password).map_err(|_| ApiError::Internal)?;
        match worker.with(|db| db.create_user(&body.username, &hash, now_ms())) {
            Ok(user) => Ok(Response::ok(201, "회원가입 성공", UserView::from(&user))),
            Err(StoreError::Conflict) => Err(ApiError::Conflict("이미 사용 중인 사용자 이름입니다")),
            Err(e) => Err(store_error(e)),
        }
    })
}

/// Issues an access and a refresh token and remembers the refresh token in `family`.
fn issue_pair(
    worker: &mut Worker,
    shared: &Shared,
    uid: i64,
    username: &str,
    family: String,
) -> Result<TokenPair, ApiError> {
    let now = now_secs();
    let access = shared
        .keys
        .issue(TokenType::Access, uid, username, now)
        .map_err(|_| ApiError::Internal)?;
    let refresh = shared
        .keys
        .issue(TokenType::Refresh, uid, username, now)
        .map_err(|_| ApiError::Internal)?;
    let record = NewRefreshToken {
        user_id: uid,
        token_hash: token_hash(&refresh.token),
        family,
        expires_at_ms: refresh.claims.exp.saturating_mul(1000),
    };
    worker
        .with(|db| db.insert_refresh_token(&record))
        .map_err(store_error)?;
    Ok(TokenPair {
        access_token: access.token,
        refresh_token: refresh.token,
        token_type: "Bearer",
        expires_in: shared.keys.access_ttl_secs(),
    })
}

fn login(shared: &Arc<Shared>, conn: ConnRef, client_ip: &str, req: &Request) -> Outcome {
    let body: Credentials = json_body(req)?;
    if body.username.is_empty() || body.password.is_empty() {
        return Err(ApiError::InvalidRequest("username과 password가 필요합니다".into()));
    }
    // Demo users predate the password length rule, so login only bounds the input.
    if body.username.len() > validate::USERNAME_MAX || body.password.chars().count() > validate::PASSWORD_MAX {
        return Err(ApiError::Unauthorized("아이디 또는 비밀번호가 올바르지 않습니다"));
    }
    if let Err(wait) = shared.check_login_rate(client_ip, &body.username) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    run(shared, conn, Lane::Hashing, move |worker, shared| {
        let user = worker
            .with(|db| db.user_credentials(&body.username))
            .map_err(store_error)?;
        let Some(user) = user else {
            // Same cost as a real check, so response time does not reveal which names exist.
            password::burn_equivalent_time(&body.password);
            return Err(ApiError::Unauthorized("아이디 또는 비밀번호가 올바르지 않습니다"));
        };
        if !password::verify_password(&user.password_hash, &body.password) {
            return Err(ApiError::Unauthorized("아이디 또는 비밀번호가 올바르지 않습니다"));
        }
        let pair = issue_pair(worker, shared, user.id, &user.username, random_id())?;
        Ok(Response::ok(200, "로그인 성공", pair))
    })
}

fn reissue(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let body: RefreshBody = json_body(req)?;
    let claims = shared
        .keys
        .verify(&body.refresh_token, TokenType::Refresh, now_secs())
        .map_err(jwt_error)?;
    run(shared, conn, Lane::General, move |worker, shared| {
        let hash = token_hash(&body.refresh_token);
        match worker
            .with(|db| db.spend_refresh_token(&hash, now_ms()))
            .map_err(store_error)?
        {
            SpendOutcome::Spent { user_id, family } => {
                if user_id != claims.uid {
                    return Err(ApiError::InvalidToken);
                }
                let pair = issue_pair(worker, shared, claims.uid, &claims.sub, family)?;
                Ok(Response::ok(200, "토큰 재발급 성공", pair))
            }
            SpendOutcome::Reused { family } => {
                log::warn!("refresh token reuse for user {}: revoking its family", claims.sub);
                worker
                    .with(|db| db.revoke_family(&family, now_ms()))
                    .map_err(store_error)?;
                Err(ApiError::InvalidToken)
            }
            SpendOutcome::Expired => Err(ApiError::TokenExpired),
            SpendOutcome::Unknown => Err(ApiError::InvalidToken),
        }
    })
}

fn logout(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    let body: RefreshBody = json_body(req)?;
    // An expired refresh token may still be revoked; a forged one or an access token may not.
    match shared.keys.verify(&body.refresh_token, TokenType::Refresh, now_secs()) {
        Ok(_) | Err(JwtError::Expired) => {}
        Err(e) => return Err(jwt_error(e)),
    }
    run(shared, conn, Lane::General, move |worker, _| {
        let hash = token_hash(&body.refresh_token);
        match worker
            .with(|db| db.refresh_token_family(&hash, claims.uid))
            .map_err(store_error)?
        {
            Some(family) => {
                worker
                    .with(|db| db.revoke_family(&family, now_ms()))
                    .map_err(store_error)?;
                Ok(Response::ok(200, "로그아웃 성공", serde_json::Value::Null))
            }
            None => Err(ApiError::InvalidToken),
        }
    })
}

fn me(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    run(shared, conn, Lane::General, move |worker, _| {
        match worker.with(|db| db.user_by_id(claims.uid)).map_err(store_error)? {
            Some(user) => Ok(Response::ok(200, "사용자 조회 성공", UserView::from(&user))),
            None => Err(ApiError::InvalidToken),
        }
    })
}

/// A positive id query parameter.
fn id_param(req: &Request, name: &'static str) -> Result<Option<i64>, ApiError> {
    match req.query_param(name) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::InvalidRequest(format!("{name}: 0 이상의 정수여야 합니다"))),
        },
    }
}

/// `limit` in 1..=500, default 50.
fn limit_param(req: &Request) -> Result<u32, ApiError> {
    match req.query_param("limit") {
        None => Ok(50),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(ApiError::InvalidRequest(
                "limit: 1부터 500 사이의 정수여야 합니다".into(),
            )),
        },
    }
}

fn history(shared: &Arc<Shared>, conn: ConnRef, req: &Request, room: &str) -> Outcome {
    authenticate(shared, req)?;
    let room = percent_decode(room).ok_or_else(|| ApiError::InvalidRequest("roomId: 잘못된 인코딩입니다".into()))?;
    validate::room_id(&room).map_err(|e| ApiError::InvalidRequest(format!("roomId: {e}")))?;
    let query = HistoryQuery {
        limit: limit_param(req)?,
        before: id_param(req, "before")?,
        after: id_param(req, "after")?,
    };
    run(shared, conn, Lane::General, move |worker, _| {
        let messages = worker.with(|db| db.chat_history(&room, query)).map_err(store_error)?;
        let views: Vec<ChatView> = messages.iter().map(ChatView::from).collect();
        Ok(Response::json(200, &views))
    })
}

fn list_notifications(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    let unread_only = match req.query_param("unread").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::InvalidRequest("unread: true 또는 false 여야 합니다".into())),
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
        Ok(Response::ok(200, "알림 목록 조회 성공", views))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectNotification {
    recipient: String,
    message: String,
}

fn create_notification(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    let body: DirectNotification = json_body(req)?;
    if validate::username(&body.recipient).is_err() {
        return Err(ApiError::NotFound("받는 사용자를 찾을 수 없습니다"));
    }
    validate::chat_message(&body.message, shared.config.chat.max_message_chars)
        .map_err(|e| ApiError::InvalidRequest(format!("message: {e}")))?;
    if let Err(wait) = shared.check_direct_rate(&claims.sub) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        });
    }
    run(shared, conn, Lane::General, move |worker, shared| {
        let new = NewNotification {
            recipient: body.recipient,
            kind: "direct".into(),
            sender: claims.sub,
            room_id: None,
            message: body.message,
            created_at_ms: now_ms(),
        };
        match worker.with(|db| db.create_notification(&new)).map_err(store_error)? {
            Some(n) => {
                shared
                    .metrics
                    .notifications_created
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                shared.hub.publish_notifications(vec![views::notification_event(&n)]);
                Ok(Response::ok(201, "알림 전송 성공", NotificationView::from(&n)))
            }
            None => Err(ApiError::NotFound("받는 사용자를 찾을 수 없습니다")),
        }
    })
}

fn mark_read(shared: &Arc<Shared>, conn: ConnRef, req: &Request, id: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let id: i64 = match id.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(ApiError::InvalidRequest("id: 양의 정수여야 합니다".into())),
    };
    run(shared, conn, Lane::General, move |worker, _| {
        let marked = worker
            .with(|db| db.mark_notification_read(id, &claims.sub, now_ms()))
            .map_err(store_error)?;
        if !marked {
            return Err(ApiError::NotFound("알림을 찾을 수 없습니다"));
        }
        let found = worker
            .with(|db| db.notifications_after(&claims.sub, id - 1, 1))
            .map_err(store_error)?;
        match found.first().filter(|n| n.id == id) {
            Some(n) => Ok(Response::ok(200, "알림 읽음 처리 성공", NotificationView::from(n))),
            None => Err(ApiError::NotFound("알림을 찾을 수 없습니다")),
        }
    })
}

fn health(shared: &Shared) -> Handled {
    if shared.pool.is_up() {
        Handled::Now(Response::raw_json(200, br#"{"status":"UP"}"#.to_vec()))
    } else {
        Handled::Now(Response::raw_json(503, br#"{"status":"DOWN","store":"DOWN"}"#.to_vec()))
    }
}

fn metrics(shared: &Shared, is_loopback: bool) -> Outcome {
    if shared.config.server.metrics_loopback_only && !is_loopback {
        return Err(ApiError::Forbidden);
    }
    let body = shared.metrics.render(shared.pool.queue_depth(), shared.pool.is_up());
    Ok(Handled::Now(Response::text(200, "text/plain; version=0.0.4", body)))
}
