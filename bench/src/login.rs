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
const LOGIN_THREADS: usize = 4;
/// How long the whole signup/login phase may take, 429 back-offs included.
const LOGIN_DEADLINE: Duration = Duration::from_secs(60);

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

struct HttpResponse {
    status: u16,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

fn post(ep: &Endpoint, source: usize, sources: usize, path: &str, body: &str) -> Result<HttpResponse, LoginError> {
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
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        ep.host_header(),
        body.len()
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
pub fn tokens(cfg: &Config) -> Result<Vec<String>, LoginError> {
    let deadline = Instant::now() + LOGIN_DEADLINE;
    let results: Mutex<Vec<Option<Result<String, LoginError>>>> = Mutex::new((0..cfg.users).map(|_| None).collect());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..LOGIN_THREADS.min(cfg.users) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= cfg.users {
                    break;
                }
                let r = login_one(cfg, i, deadline);
                let failed = r.is_err();
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
                if failed {
                    next.store(cfg.users, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let all = results
        .into_inner()
        .map_err(|_| LoginError::Rejected("login thread panicked".into()))?;
    let mut out = Vec::with_capacity(cfg.users);
    for r in all {
        match r {
            Some(Ok(t)) => out.push(t),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    if out.len() < cfg.users {
        return Err(LoginError::Rejected("login aborted after an earlier failure".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn dechunks_and_tolerates_garbage() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b"zz\r\nabc"), b"");
        assert_eq!(dechunk(b"10\r\nab"), b"");
    }
}
