//! The browser chat client of SPEC §9: static files from `web/`, compiled into the binary so the
//! page works with nothing beside it (and offline: no CDN). `GET /` is `index.html`; every other
//! file is under `/web/`. On by default in dev mode, off in production unless
//! `server.web_client = true`; when off, these paths are 404 like any unknown path.

use crate::config::Config;
use crate::http::response::{ApiError, Response};

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The file's bytes, as they are in `web/`.
    pub body: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

/// Embeds each listed file of `web/` as `(relative path, bytes)`.
macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)) as &[u8])),*]
    };
}

/// Every served file, by its path under `web/`. A unit test checks this list against the folder.
static FILES: &[(&str, &[u8])] = embed![
    "index.html",
    "app.css",
    "js/api.js",
    "js/chat.js",
    "js/dom.js",
    "js/i18n.js",
    "js/main.js",
    "js/notification-list.js",
    "js/notifications.js",
    "js/room.js",
    "js/rooms.js",
    "js/session.js",
    "vendor/stompjs/LICENSE",
    "vendor/stompjs/stomp.umd.min.js",
];

/// The URL prefix of every file but the page itself.
const PREFIX: &str = "/web/";

/// The page's own policy: scripts, styles and connections only to the origin it came from.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The `Content-Type` of a file name.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "text/plain; charset=utf-8",
    }
}

/// The file a request path names: `/` is `index.html`, `/web/<file>` a file of `web/`.
pub fn asset(path: &str) -> Option<Asset> {
    let name = if path == "/" {
        "index.html"
    } else {
        path.strip_prefix(PREFIX)?
    };
    FILES.iter().find(|(file, _)| *file == name).map(|(file, body)| Asset {
        body,
        content_type: content_type(file),
    })
}

/// Whether the client is served: `server.web_client`, or dev mode when that is unset.
pub fn enabled(config: &Config) -> bool {
    config.server.web_client.unwrap_or(config.dev)
}

/// The answer to `GET`/`HEAD` of a client path: the file, or the usual 404 envelope when the
/// path names none or the client is off.
pub fn respond(config: &Config, path: &str) -> Response {
    let Some(file) = asset(path).filter(|_| enabled(config)) else {
        return ApiError::NotFound(crate::text::Text::PathNotFound).into_response();
    };
    // `no-cache`: the browser revalidates every time, so a rebuilt binary's files are seen at once.
    let response = Response::text(200, file.content_type, file.body)
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Content-Type-Options", "nosniff");
    if file.content_type.starts_with("text/html") {
        response
            .with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            .with_header("Referrer-Policy", "no-referrer")
    } else {
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(dev: bool, web_client: Option<bool>) -> Config {
        let mut c = Config {
            dev,
            ..Config::default()
        };
        c.server.web_client = web_client;
        c
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_page_and_its_files_are_found_with_their_types() {
        let page = asset("/").expect("index.html");
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(std::str::from_utf8(page.body).is_ok_and(|html| html.contains("data-testid=\"message-list\"")));
        assert_eq!(
            asset("/web/js/main.js").map(|a| a.content_type),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            asset("/web/app.css").map(|a| a.content_type),
            Some("text/css; charset=utf-8")
        );
        assert_eq!(
            asset("/web/vendor/stompjs/LICENSE").map(|a| a.content_type),
            Some("text/plain; charset=utf-8")
        );
    }

    #[test]
    fn unknown_and_crafted_paths_are_not_found() {
        for path in [
            "",
            "/web/",
            "/web",
            "/index.html",
            "/web/nope.js",
            "/web/../Cargo.toml",
            "/web/js/../../Cargo.toml",
            "/web//js/main.js",
            "/web/JS/main.js",
            "/web/index.html/",
            "/webjs/main.js",
        ] {
            assert_eq!(asset(path), None, "{path:?}");
        }
    }

    #[test]
    fn every_file_of_the_folder_is_served_and_every_entry_exists() {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read web/").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if path.extension().is_none_or(|e| e != "md") {
                    let rel = path.strip_prefix(root).expect("under web/");
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(f, _)| (*f).to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "web/ and FILES in src/web.rs must list the same files");
    }

    #[test]
    fn on_in_dev_off_in_production_unless_configured() {
        assert!(enabled(&config(true, None)));
        assert!(!enabled(&config(false, None)));
        assert!(enabled(&config(false, Some(true))));
        assert!(!enabled(&config(true, Some(false))));
    }

    #[test]
    fn respond_serves_with_headers_or_answers_404() {
        let r = respond(&config(true, None), "/");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/html; charset=utf-8");
        assert_eq!(header(&r, "Cache-Control"), Some("no-cache"));
        assert!(header(&r, "Content-Security-Policy").is_some_and(|csp| csp.contains("connect-src 'self'")));

        let r = respond(&config(true, None), "/web/vendor/stompjs/stomp.umd.min.js");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/javascript; charset=utf-8");
        assert!(std::str::from_utf8(&r.body).is_ok_and(|js| js.contains("StompJs")));
        assert_eq!(header(&r, "X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(header(&r, "Content-Security-Policy"), None);

        for (c, path) in [(config(true, None), "/web/missing.js"), (config(false, None), "/")] {
            let r = respond(&c, path);
            assert_eq!(r.status, 404, "{path}");
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON envelope");
            assert_eq!(body["success"], false);
            assert_eq!(body["code"], "NOT_FOUND");
        }
    }
}
