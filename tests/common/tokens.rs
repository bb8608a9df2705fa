//! Logging in, signing up, and forging tokens with the dev secret (SPEC §3: HS256 over the
//! secret's UTF-8 bytes, so other services — and these tests — can mint and verify tokens).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

use super::http::Response;
use super::server::Server;

/// The dev-mode secret the test servers run with.
pub const DEV_SECRET: &str = "herald-dev-secret-change-me-please-32b";

/// An access and a refresh token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// `POST /auth/login`, whatever the answer.
#[track_caller]
pub fn login_response(server: &Server, username: &str, password: &str) -> Response {
    server.post_json(
        "/auth/login",
        None,
        &json!({ "username": username, "password": password }),
    )
}

/// Logs in; panics unless the answer is 200 with a token pair.
#[track_caller]
pub fn login(server: &Server, username: &str, password: &str) -> Tokens {
    let r = login_response(server, username, password);
    let data = r.data(200);
    tokens_of(&data)
}

/// The pair in a login/reissue `data`.
#[track_caller]
pub fn tokens_of(data: &Value) -> Tokens {
    let access = data["accessToken"].as_str();
    let refresh = data["refreshToken"].as_str();
    match (access, refresh) {
        (Some(a), Some(r)) => Tokens {
            access: a.to_string(),
            refresh: r.to_string(),
        },
        _ => panic!("no accessToken/refreshToken in {data}"),
    }
}

/// `POST /auth/signup`, whatever the answer.
#[track_caller]
pub fn signup_response(server: &Server, username: &str, password: &str) -> Response {
    server.post_json(
        "/auth/signup",
        None,
        &json!({ "username": username, "password": password }),
    )
}

/// A fresh unique user, signed up and logged in: `(username, tokens)`.
#[track_caller]
pub fn new_user(server: &Server, prefix: &str) -> (String, Tokens) {
    let username = super::unique(prefix, 32);
    let password = "correct-horse-battery";
    signup_response(server, &username, password).data(201);
    let tokens = login(server, &username, password);
    (username, tokens)
}

/// The claims of a token signed with the dev secret (expiry not checked); panics when the
/// signature does not verify.
#[track_caller]
pub fn claims(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(DEV_SECRET.as_bytes()), &validation)
        .unwrap_or_else(|e| panic!("token does not verify with the dev secret as HS256 key ({e}): {token}"))
        .claims
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Claims shaped like Herald's: `sub`, `uid`, `iat`, `exp`, `jti`, `typ`.
pub fn claims_for(username: &str, uid: i64, typ: &str, iat: i64, exp: i64) -> Value {
    json!({
        "sub": username,
        "uid": uid,
        "iat": iat,
        "exp": exp,
        "jti": super::unique("jti", 40),
        "typ": typ,
    })
}

/// Signs `claims` with `secret` (UTF-8 bytes as key) using `alg` (an HMAC algorithm).
pub fn forge(claims: &Value, secret: &str, alg: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("sign a test token")
}

/// An unsigned `alg: none` token carrying `claims`.
pub fn alg_none(claims: &Value) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// Base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The uid of the user a token belongs to.
#[track_caller]
pub fn uid_of(token: &str) -> i64 {
    claims(token)["uid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no numeric uid claim in {token}"))
}
