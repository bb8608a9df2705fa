//! `Expect: 100-continue` (curl sends it for any body over 1 KiB): an acceptable head gets
//! `100 Continue` at once, an unacceptable one its final error at once; both backends.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Config, Server};
use common::{run_on_each_backend, IO_TIMEOUT};

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
}

/// Reads until `\r\n\r\n` (a whole head) or the timeout.
fn read_head(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn continue_then_body(server: &Server) {
    let body = serde_json::json!({"username": "testuser", "password": "x".repeat(2000)}).to_string();
    let mut s = connect(server);
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    let started = Instant::now();
    let interim = read_head(&mut s);
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "at once: {:?}",
        started.elapsed()
    );
    s.write_all(body.as_bytes()).expect("body");
    let final_head = read_head(&mut s);
    // Too long a password is refused as bad credentials (login bounds the input).
    assert!(final_head.starts_with("HTTP/1.1 401 "), "{final_head}");
}

fn oversized_gets_413_without_the_body(server: &Server) {
    let mut s = connect(server);
    let head = "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 10000000\r\n\r\n";
    s.write_all(head.as_bytes()).expect("head");
    let answer = read_head(&mut s);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    server.assert_healthy("an oversized Expect request");
}

fn curl_does_not_wait_for_its_timeout(server: &Server) {
    let body = serde_json::json!({"username": "testuser", "password": "testpass", "pad": "y".repeat(1500)}).to_string();
    let started = Instant::now();
    // With a 20 s expect timeout, a server that never answers 100 would make curl wait 20 s.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--expect100-timeout",
            "20",
            "-m",
            "30",
        ])
        .args(["-H", "Content-Type: application/json", "--data-binary", &body])
        .arg(format!("http://{}/auth/login", server.addr))
        .output()
        .expect("curl runs (scripts/test.sh requires it)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400", "unknown field pad");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "curl waited {:?}",
        started.elapsed()
    );
}

#[test]
fn expect_continue() {
    run_on_each_backend(
        "expect_continue",
        &Config::new(),
        &[
            ("continue then body", continue_then_body),
            ("oversized: 413 at once", oversized_gets_413_without_the_body),
            ("curl does not wait", curl_does_not_wait_for_its_timeout),
        ],
    );
}
