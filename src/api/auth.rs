//! Accounts and tokens: signup, login, reissue (refresh rotation with reuse detection), logout,
//! `/users/me`, and the demo users of dev mode.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{authenticate, json_body, jwt_error, run, store_error, Lane, Outcome};
use crate::auth::jwt::{random_id, token_hash, JwtError, TokenType};
use crate::auth::{password, validate};
use crate::bus::ConnRef;
use crate::clock::{now_ms, now_secs};
use crate::http::request::Request;
use crate::http::response::{ApiError, Response};
use crate::shared::Shared;
use crate::store::model::{NewRefreshToken, SpendOutcome};
use crate::store::pool::Worker;
use crate::store::{Backend, StoreError};
use crate::text::Text;
use crate::views::UserView;

/// Users seeded in dev mode so that the seed's Postman calls work at once.
pub const DEV_USERS: [(&str, &str); 3] = [("testuser", "testpass"), ("alice", "alicepass"), ("bob", "bobpass")];

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

pub(super) fn signup(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let body: Credentials = json_body(req)?;
    validate::username(&body.username).map_err(|e| ApiError::InvalidRequest(format!("username: {e}")))?;
    validate::password(&body.password).map_err(|e| ApiError::InvalidRequest(format!("password: {e}")))?;
    run(shared, conn, Lane::Hashing, move |worker, _| {
        let hash = password::hash_password(&body.password).map_err(|_| ApiError::Internal)?;
        match worker.with(|db| db.create_user(&body.username, &hash, now_ms())) {
            Ok(user) => Ok(Response::ok(201, Text::SignupOk.ko(), UserView::from(&user))),
            Err(StoreError::Conflict) => Err(ApiError::Conflict(Text::UsernameTaken)),
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

pub(super) fn login(shared: &Arc<Shared>, conn: ConnRef, client_ip: &str, req: &Request) -> Outcome {
    let body: Credentials = json_body(req)?;
    if body.username.is_empty() || body.password.is_empty() {
        return Err(ApiError::InvalidRequest(Text::CredentialsRequired.ko().into()));
    }
    // Demo users predate the password length rule, so login only bounds the input.
    if body.username.len() > validate::USERNAME_MAX || body.password.chars().count() > validate::PASSWORD_MAX {
        return Err(ApiError::Unauthorized(Text::BadCredentials));
    }
    if let Err(wait) = shared.check_login_rate(client_ip, &body.username) {
        log::info!(
            "login throttled: client {client_ip}, retry after {} s",
            wait.as_secs().max(1)
        );
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
            return Err(ApiError::Unauthorized(Text::BadCredentials));
        };
        if !password::verify_password(&user.password_hash, &body.password) {
            return Err(ApiError::Unauthorized(Text::BadCredentials));
        }
        let pair = issue_pair(worker, shared, user.id, &user.username, random_id())?;
        Ok(Response::ok(200, Text::LoginOk.ko(), pair))
    })
}

pub(super) fn reissue(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
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
                Ok(Response::ok(200, Text::ReissueOk.ko(), pair))
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

pub(super) fn logout(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
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
                Ok(Response::ok(200, Text::LogoutOk.ko(), serde_json::Value::Null))
            }
            None => Err(ApiError::InvalidToken),
        }
    })
}

pub(super) fn me(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    run(shared, conn, Lane::General, move |worker, _| {
        match worker.with(|db| db.user_by_id(claims.uid)).map_err(store_error)? {
            Some(user) => Ok(Response::ok(200, Text::UserFound.ko(), UserView::from(&user))),
            None => Err(ApiError::InvalidToken),
        }
    })
}

/// Creates the demo users that do not exist yet (their passwords predate the length rule).
pub fn seed_dev_users(db: &mut dyn Backend) -> Result<(), StoreError> {
    for (name, pass) in DEV_USERS {
        if db.user_exists(name)? {
            continue;
        }
        let hash = password::hash_password(pass).map_err(|e| StoreError::Other(e.to_string()))?;
        match db.create_user(name, &hash, now_ms()) {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
