//! A tiny HTTP/1.1 client over `std::net::TcpStream`: exact bytes out, one response at a time in,
//! so keep-alive, pipelining and malformed requests can be tested. Every read is bounded.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::IO_TIMEOUT;

/// Largest response head the client accepts.
const MAX_HEAD: usize = 64 * 1024;

/// A request to send; `to_bytes` adds `Host` and `Content-Length`.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    pub fn post(target: &str) -> Request {
        Request::new("POST", target)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn bearer(self, token: &str) -> Request {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, value: &Value) -> Request {
        self.body(Some("application/json"), value.to_string().into_bytes())
    }

    /// A body with the given content type (none when `None`).
    pub fn body(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Request {
        if let Some(ct) = content_type {
            self = self.header("Content-Type", ct);
        }
        self.body = Some(body.into());
        self
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = &self.body {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if let Some(body) = &self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }
}

/// A response: status, headers in order, body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the status and body when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {:?}", self.status, self.text()))
    }

    /// `data` of a success envelope, after checking the status and `success:true`.
    #[track_caller]
    pub fn data(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}, got body {}", self.text());
        let v = self.json();
        assert_eq!(v["success"], true, "success envelope expected: {v}");
        assert!(v["message"].is_string(), "envelope without message: {v}");
        v["data"].clone()
    }

    /// Asserts the error envelope `{"success":false,"message":<non-empty>,"code":<code>}` with `status`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}, got {} with body {}",
            self.status,
            self.text()
        );
        let content_type = self.header("Content-Type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "error with Content-Type {content_type:?}: {}",
            self.text()
        );
        let v = self.json();
        assert_eq!(v["success"], false, "error envelope expected: {v}");
        assert_eq!(v["code"], code, "expected code {code}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error envelope without a message: {v}"
        );
    }
}

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read but not yet consumed (the start of the next response, or event-stream data).
    pub buf: Vec<u8>,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends `req` and reads its response.
    pub fn send(&mut self, req: &Request) -> io::Result<Response> {
        self.write_raw(&req.to_bytes())?;
        self.read_response(req.method == "HEAD")
    }

    /// Reads more bytes into `buf` (waiting at most until `deadline`). Ok(0) means EOF.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads a response head: status and headers. The bytes after it stay in `buf`.
    pub fn read_head(&mut self) -> io::Result<(u16, Vec<(String, String)>)> {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let mut storage = [httparse::EMPTY_HEADER; 100];
            let mut parsed = httparse::Response::new(&mut storage);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = parsed.code.unwrap_or(0);
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    self.buf.drain(..n);
                    return Ok((status, headers));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "unparsable response head ({e}): {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ))
                }
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "response head too large"));
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        }
    }

    /// Reads one whole response (Content-Length body, or up to EOF when there is none).
    pub fn read_response(&mut self, head_only: bool) -> io::Result<Response> {
        let (status, headers) = self.read_head()?;
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim().parse::<usize>())
            .transpose()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
        let deadline = Instant::now() + IO_TIMEOUT;
        let body = match (no_body, length) {
            (true, _) => Vec::new(),
            (false, Some(len)) => {
                while self.buf.len() < len {
                    if self.fill(deadline)? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("body cut short: {} of {len} bytes", self.buf.len()),
                        ));
                    }
                }
                self.buf.drain(..len).collect()
            }
            (false, None) => {
                while self.fill(deadline)? > 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Response { status, headers, body })
    }

    /// True when the server closes the connection (EOF or reset) within `timeout`; bytes that
    /// arrive meanwhile are kept in `buf`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if timed_out(&e) => return false,
                Err(_) => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}
