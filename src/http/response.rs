//! HTTP responses: a small value built by handlers and encoded straight into a connection's
//! outbound buffer, plus the seed's JSON envelope and the stable error codes of SPEC §3.

use serde::Serialize;

use crate::text::Text;

/// A response waiting to be encoded.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this response (errors that leave the stream out of sync).
    pub close: bool,
}

impl Response {
    /// A JSON response from any serializable value.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::raw_json(status, body),
            Err(e) => {
                log::error!("response serialization failed: {e}");
                ApiError::Internal.into_response()
            }
        }
    }

    /// A JSON response from bytes that are already JSON.
    pub fn raw_json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    /// The seed's success envelope `{"success":true,"message":…,"data":…}`.
    pub fn ok<T: Serialize>(status: u16, message: &str, data: T) -> Response {
        #[derive(Serialize)]
        struct Envelope<'a, T> {
            success: bool,
            message: &'a str,
            data: T,
        }
        Response::json(
            status,
            &Envelope {
                success: true,
                message,
                data,
            },
        )
    }

    /// Plain text (metrics).
    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            close: false,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends the wire form to `out`. `keep_alive` false adds `Connection: close`; `extra`
    /// are connection-level headers (CORS) the handler did not know about.
    pub fn encode(&self, out: &mut Vec<u8>, keep_alive: bool, head_only: bool, extra: &[(&'static str, String)]) {
        use std::io::Write;
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if !keep_alive || self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        for (name, value) in self.headers.iter().chain(extra) {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Every error the REST API answers with: one stable code, one status, one Korean message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400 `INVALID_REQUEST`; the text names the field.
    InvalidRequest(String),
    /// 401 `UNAUTHORIZED`: no credentials, or wrong username/password.
    Unauthorized(Text),
    /// 401 `TOKEN_EXPIRED`.
    TokenExpired,
    /// 401 `INVALID_TOKEN`: forged, malformed, wrong type, revoked.
    InvalidToken,
    /// 403 `FORBIDDEN`.
    Forbidden,
    /// 404 `NOT_FOUND`.
    NotFound(Text),
    /// 405 `METHOD_NOT_ALLOWED` with the methods the path takes.
    MethodNotAllowed(&'static str),
    /// 408 `REQUEST_TIMEOUT`: the headers did not arrive in time.
    RequestTimeout,
    /// 409 `CONFLICT`.
    Conflict(Text),
    /// 411 `LENGTH_REQUIRED`: chunked request bodies are not accepted.
    LengthRequired,
    /// 413 `PAYLOAD_TOO_LARGE` (body), also used with status 431 for oversize headers.
    PayloadTooLarge { status: u16 },
    /// 415 `UNSUPPORTED_MEDIA_TYPE`.
    UnsupportedMediaType,
    /// 429 `TOO_MANY_REQUESTS` with `Retry-After` seconds.
    TooManyRequests { retry_after_secs: u64 },
    /// 500 `INTERNAL_ERROR`: nothing of the cause is shown.
    Internal,
    /// 503 `SERVICE_UNAVAILABLE`: the store is down or the queue is full.
    ServiceUnavailable,
    /// 505 `HTTP_VERSION_NOT_SUPPORTED`.
    VersionNotSupported,
}

impl ApiError {
    /// Status, stable code, human message.
    pub fn parts(&self) -> (u16, &'static str, String) {
        let (status, code, text) = match self {
            ApiError::InvalidRequest(m) => return (400, "INVALID_REQUEST", m.clone()),
            ApiError::Unauthorized(t) => (401, "UNAUTHORIZED", *t),
            ApiError::TokenExpired => (401, "TOKEN_EXPIRED", Text::TokenExpired),
            ApiError::InvalidToken => (401, "INVALID_TOKEN", Text::InvalidToken),
            ApiError::Forbidden => (403, "FORBIDDEN", Text::Forbidden),
            ApiError::NotFound(t) => (404, "NOT_FOUND", *t),
            ApiError::MethodNotAllowed(_) => (405, "METHOD_NOT_ALLOWED", Text::MethodNotAllowed),
            ApiError::RequestTimeout => (408, "REQUEST_TIMEOUT", Text::RequestTimeout),
            ApiError::Conflict(t) => (409, "CONFLICT", *t),
            ApiError::LengthRequired => (411, "LENGTH_REQUIRED", Text::LengthRequired),
            ApiError::PayloadTooLarge { status } => (*status, "PAYLOAD_TOO_LARGE", Text::PayloadTooLarge),
            ApiError::UnsupportedMediaType => (415, "UNSUPPORTED_MEDIA_TYPE", Text::UnsupportedMediaType),
            ApiError::TooManyRequests { .. } => (429, "TOO_MANY_REQUESTS", Text::TooManyRequests),
            ApiError::Internal => (500, "INTERNAL_ERROR", Text::InternalError),
            ApiError::ServiceUnavailable => (503, "SERVICE_UNAVAILABLE", Text::ServiceUnavailable),
            ApiError::VersionNotSupported => (505, "HTTP_VERSION_NOT_SUPPORTED", Text::HttpVersionNotSupported),
        };
        (status, code, text.ko().to_owned())
    }

    /// The error envelope `{"success":false,"message":…,"code":…}` with its status and headers.
    pub fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct ErrorEnvelope<'a> {
            success: bool,
            message: &'a str,
            code: &'a str,
        }
        let (status, code, message) = self.parts();
        let body = serde_json::to_vec(&ErrorEnvelope {
            success: false,
            message: &message,
            code,
        })
        .unwrap_or_default();
        let mut response = Response::raw_json(status, body);
        match self {
            ApiError::TooManyRequests { retry_after_secs } => {
                response.headers.push(("Retry-After", retry_after_secs.to_string()));
            }
            ApiError::MethodNotAllowed(allow) => response.headers.push(("Allow", allow.to_string())),
            ApiError::Unauthorized(_) | ApiError::TokenExpired | ApiError::InvalidToken => {
                response.headers.push(("WWW-Authenticate", "Bearer".to_string()));
            }
            _ => {}
        }
        response
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        e.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_envelope_is_the_seed_shape() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Tokens {
            access_token: &'static str,
            refresh_token: &'static str,
        }
        let r = Response::ok(
            200,
            "로그인 성공",
            Tokens {
                access_token: "a",
                refresh_token: "r",
            },
        );
        assert_eq!(
            String::from_utf8(r.body).expect("utf8"),
            r#"{"success":true,"message":"로그인 성공","data":{"accessToken":"a","refreshToken":"r"}}"#
        );
    }

    #[test]
    fn error_envelope_and_headers() {
        let r = ApiError::TooManyRequests { retry_after_secs: 7 }.into_response();
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("Retry-After", "7".into())));
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["success"], false);
        assert_eq!(v["code"], "TOO_MANY_REQUESTS");
        let mut out = Vec::new();
        r.encode(&mut out, false, false, &[]);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", r.body.len())));
    }
}
