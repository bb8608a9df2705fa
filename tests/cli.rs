//! The command line as a new user meets it: help, mistakes, `migrate`, `user add`, production
//! mode, an unreachable store, and a second server on a port already in use.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::server::{backends, Backend, Config, Server};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// Runs `herald` with `args`, the environment cleared of `HERALD_*`, `env` set, `stdin` piped in;
/// killed after 60 s.
fn herald(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(HERALD);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn herald");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "herald {args:?} did not exit in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_db(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/herald.db", dir.display());
    (dir, url)
}

#[test]
fn help_version_and_mistakes() {
    let help = herald(&["--help"], &[], "");
    assert!(help.status.success());
    assert!(text(&help.stdout).starts_with("usage: herald"), "help goes to stdout");
    assert!(help.stderr.is_empty());
    let version = herald(&["--version"], &[], "");
    assert_eq!(
        text(&version.stdout).trim(),
        format!("herald {}", env!("CARGO_PKG_VERSION"))
    );

    let missing_name = herald(&["user", "add"], &[], "");
    assert_eq!(missing_name.status.code(), Some(2));
    let err = text(&missing_name.stderr);
    assert!(err.contains("user add needs the user's NAME"), "{err}");
    assert!(!err.contains("unknown command"), "{err}");
    let unknown = herald(&["frobnicate"], &[], "");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("unknown command: frobnicate"));
}

#[test]
fn migrate_and_user_add_say_what_they_did() {
    let (dir, url) = temp_db("migrate");
    let env = [("HERALD_DATABASE_URL", url.as_str()), ("HERALD_DEV", "1")];
    let first = herald(&["migrate"], &env, "");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(
        out.contains("migrated from version 0 to"),
        "a fresh database is migrated: {out}"
    );
    let again = herald(&["migrate"], &env, "");
    assert!(text(&again.stdout).contains("is up to date"), "{}", text(&again.stdout));

    let empty = herald(&["user", "add", "dave"], &env, "");
    assert_eq!(empty.status.code(), Some(1));
    let err = text(&empty.stderr);
    assert!(err.contains("no password on stdin"), "{err}");
    assert_eq!(err.matches("herald:").count(), 1, "said once: {err}");
    let short = herald(&["user", "add", "dave"], &env, "short\n");
    assert!(text(&short.stderr).contains("password:"), "{}", text(&short.stderr));
    let created = herald(&["user", "add", "dave"], &env, "dave-password-1\n");
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).starts_with("created user dave (id "));
    let twice = herald(&["user", "add", "dave"], &env, "dave-password-1\n");
    assert_eq!(twice.status.code(), Some(1));
    let err = text(&twice.stderr);
    assert_eq!(err.trim(), "herald: user dave already exists", "one line, once: {err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn production_mode_needs_the_secret_only_to_serve() {
    let (dir, url) = temp_db("prod");
    let env = [("HERALD_DATABASE_URL", url.as_str()), ("HERALD_DEV", "0")];
    let migrate = herald(&["migrate"], &env, "");
    assert!(
        migrate.status.success(),
        "migrate does not use the secret: {}",
        text(&migrate.stderr)
    );
    let add = herald(&["user", "add", "erin"], &env, "erin-password-1\n");
    assert!(
        add.status.success(),
        "user add does not use the secret: {}",
        text(&add.stderr)
    );
    let serve = herald(&[], &[env[0], env[1], ("HERALD_BIND", "127.0.0.1:0")], "");
    assert_eq!(serve.status.code(), Some(2));
    assert!(text(&serve.stderr).contains("jwt.secret is the dev default"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unreachable_store_is_reported_in_words() {
    let out = herald(
        &["migrate"],
        &[("HERALD_DATABASE_URL", "mysql://root:pw@127.0.0.1:1/none")],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("DriverError {") && !err.contains("pw@"), "{err}");
}

#[test]
fn a_second_server_on_a_port_in_use_fails_at_start() {
    let backend = backends().into_iter().next().unwrap_or(Backend::Sqlite);
    let first = Server::start(backend, &Config::new());
    let (dir, url) = temp_db("second");
    let bind = first.addr.to_string();
    let second = herald(
        &[],
        &[
            ("HERALD_BIND", bind.as_str()),
            ("HERALD_DATABASE_URL", url.as_str()),
            ("HERALD_DEV", "1"),
        ],
        "",
    );
    assert!(!second.status.success(), "the second server must not start");
    let err = text(&second.stderr);
    assert!(err.contains("address in use"), "{err}");
    first.assert_healthy("a second server tried the same port");
    let _ = std::fs::remove_dir_all(dir);
}
