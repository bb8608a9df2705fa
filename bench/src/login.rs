//! Blocking REST client for Herald's `POST /auth/signup` and `POST /auth/login`, run once before the load starts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use thiserror::Error;

use crate::cli::Config;
use crate::endpoint::{source_addr, Endpoint};

/// Largest REST response read.
const MAX_RESPONSE: u64 = 1024 * 1024;
/// Parallel login threads; argon2 on the server is the bottleneck, not us.
const LOGIN_THREADS: usize = 8;
/// A cached token is reused only if it is valid for at least this much longer (seconds).
const CACHE_MIN_VALIDITY_S: u64 = 1800;

/// Why the bench could not obtain tokens.
#[derive(Debug, Error)]
pub enum LoginError {
    /// The REST endpoint could not be reached; is the server running?
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, std::io::Error),
    /// The server answered something other than the contract's envelope.
    #[error("{0}")]
    Rejected(String),
}

/// A response: status, `Retry-After` seconds, body.
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    retry_after: Option<u64>,
    pub(crate) body: Vec<u8>,
}

fn post(ep: &Endpoint, source: usize, sources: usize, path: &str, body: &str) -> Result<HttpResponse, LoginError> {
    request(ep, source, sources, "POST", path, Some(body), None)
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with an optional JSON body
/// and bearer token.
pub(crate) fn request(
    ep: &Endpoint,
    source: usize,
    sources: usize,
    method: &str,
    path: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> Result<HttpResponse, LoginError> {
    let unreachable = |e| LoginError::Unreachable(ep.host_header(), e);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(unreachable)?;
    socket.bind(&source_addr(source, sources).into()).map_err(unreachable)?;
    socket
        .connect_timeout(&ep.addr.into(), Duration::from_secs(5))
        .map_err(unreachable)?;
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(unreachable)?;
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let payload = match body {
        Some(b) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => "\r\n".to_string(),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{auth}Connection: close\r\n{payload}",
        ep.host_header()
    );
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut raw).map_err(unreachable)?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(LoginError::Rejected(format!("{path}: unparsable HTTP response"))),
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let retry_after = header("retry-after").and_then(|v| v.parse().ok());
    let mut body = raw[head_len..].to_vec();
    if chunked {
        body = dechunk(&body);
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.truncate(len);
    }
    Ok(HttpResponse {
        status: response.code.unwrap_or(0),
        retry_after,
        body,
    })
}

/// Reads `<host> <username>\t<token>` lines; a missing or unreadable file is an empty cache.
fn load_cache(path: &str) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, t)| (k.to_string(), t.to_string()))
        .collect()
}

fn save_cache(path: &str, cache: &std::collections::HashMap<String, String>) {
    let mut lines: Vec<String> = cache.iter().map(|(k, t)| format!("{k}\t{t}")).collect();
    lines.sort();
    let tmp = format!("{path}.tmp");
    let written = std::fs::write(&tmp, lines.join("\n") + "\n").and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        eprintln!("herald-bench: cannot save the token cache {path}: {e}");
    }
}

/// Tokens for herald-reference, which checks nothing: JWT-shaped (`{"alg":"none"}`, `{"sub":"<user>"}`, no
/// signature) so that it can read the user name for the messages' `sender`, as Herald reads it from a real token.
pub fn unsigned_tokens(cfg: &Config) -> Vec<String> {
    (0..cfg.users)
        .map(|i| {
            let claims = serde_json::json!({"sub": format!("{}{i}", cfg.user_prefix)}).to_string();
            format!("eyJhbGciOiJub25lIn0.{}.", base64url_encode(claims.as_bytes()))
        })
        .collect()
}

fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for k in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]));
        }
    }
    out
}

/// The `exp` claim of a JWT, read without verifying it (the server does that).
fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..nl])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        raw = &raw[nl + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// POSTs with back-off on 429 until `deadline`.
fn post_retrying(
    cfg: &Config,
    source: usize,
    path: &str,
    body: &str,
    deadline: Instant,
) -> Result<HttpResponse, LoginError> {
    loop {
        let r = post(&cfg.http, source, cfg.sources, path, body)?;
        if r.status != 429 {
            return Ok(r);
        }
        let wait = Duration::from_secs(r.retry_after.unwrap_or(1).clamp(1, 30));
        if Instant::now() + wait > deadline {
            return Err(LoginError::Rejected(format!(
                "{path}: still rate limited (429) at the login deadline"
            )));
        }
        std::thread::sleep(wait);
    }
}

fn login_one(cfg: &Config, i: usize, deadline: Instant) -> Result<String, LoginError> {
    let body = serde_json::json!({"username": format!("{}{i}", cfg.user_prefix), "password": cfg.password}).to_string();
    let signup = post_retrying(cfg, i, "/auth/signup", &body, deadline)?;
    if !matches!(signup.status, 200 | 201 | 409) {
        return Err(LoginError::Rejected(format!(
            "signup of user {i}: HTTP {} {}",
            signup.status,
            String::from_utf8_lossy(&signup.body)
        )));
    }
    let login = post_retrying(cfg, i, "/auth/login", &body, deadline)?;
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&login.body).ok();
    let token = parsed
        .as_ref()
        .and_then(|v| v.pointer("/data/accessToken"))
        .and_then(|t| t.as_str())
        .map(str::to_string);
    match (login.status, token) {
        (200, Some(t)) => Ok(t),
        (status, _) => Err(LoginError::Rejected(format!(
            "login of user {i}: HTTP {status} {}",
            String::from_utf8_lossy(&login.body)
        ))),
    }
}

/// Signs up (409 is fine) and logs in each of `cfg.users` users once; returns one access token per user.
///
/// With `--token-cache PATH`, tokens saved there by an earlier run (same REST host, same user names) that are valid
/// for at least another 30 minutes are reused, and the new ones are added to the file: argon2 makes each login cost
/// tens of milliseconds of server CPU, which matters for thousands of users.
pub fn tokens(cfg: &Config) -> Result<Vec<String>, LoginError> {
    let deadline = Instant::now() + cfg.login_timeout;
    let mut cache = cfg.token_cache.as_deref().map(load_cache).unwrap_or_default();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let key = |i: usize| format!("{} {}{i}", cfg.http.host_header(), cfg.user_prefix);
    let initial: Vec<Option<Result<String, LoginError>>> = (0..cfg.users)
        .map(|i| {
            cache
                .get(&key(i))
                .filter(|t| jwt_exp(t).is_some_and(|exp| exp > now_s + CACHE_MIN_VALIDITY_S))
                .map(|t| Ok(t.clone()))
        })
        .collect();
    let todo: Vec<usize> = (0..cfg.users).filter(|i| initial[*i].is_none()).collect();
    if cfg.token_cache.is_some() {
        eprintln!(
            "herald-bench: {} cached tokens reused, {} users to sign up / log in",
            cfg.users - todo.len(),
            todo.len()
        );
    }
    let results: Mutex<Vec<Option<Result<String, LoginError>>>> = Mutex::new(initial);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..LOGIN_THREADS.min(todo.len()) {
            s.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= todo.len() {
                    break;
                }
                let i = todo[n];
                let r = login_one(cfg, i, deadline);
                let failed = r.is_err();
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
                if failed {
                    next.store(todo.len(), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let all = results
        .into_inner()
        .map_err(|_| LoginError::Rejected("login thread panicked".into()))?;
    let mut out = Vec::with_capacity(cfg.users);
    let mut first_error = None;
    for (i, r) in all.into_iter().enumerate() {
        match r {
            Some(Ok(t)) => {
                cache.insert(key(i), t.clone());
                out.push(t);
            }
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    if let Some(path) = cfg.token_cache.as_deref() {
        save_cache(path, &cache);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if out.len() < cfg.users {
        return Err(LoginError::Rejected("login aborted after an earlier failure".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{base64url_decode, base64url_encode, dechunk, jwt_exp};

    #[test]
    fn reads_the_exp_claim() {
        // {"sub":"a","exp":1795623570}
        let payload = "eyJzdWIiOiJhIiwiZXhwIjoxNzk1NjIzNTcwfQ";
        assert_eq!(jwt_exp(&format!("h.{payload}.s")), Some(1_795_623_570));
        assert_eq!(base64url_decode("YWJj").unwrap(), b"abc");
        assert_eq!(jwt_exp("not-a-jwt"), None);
    }

    #[test]
    fn encodes_base64url_without_padding() {
        for (plain, coded) in [
            ("", ""),
            ("a", "YQ"),
            ("ab", "YWI"),
            ("abc", "YWJj"),
            ("\u{ff}\u{fe}", "w7_Dvg"),
        ] {
            assert_eq!(base64url_encode(plain.as_bytes()), coded);
            assert_eq!(base64url_decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn dechunks_and_tolerates_garbage() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b"zz\r\nabc"), b"");
        assert_eq!(dechunk(b"10\r\nab"), b"");
    }
}
