//! CORS for browser clients: which origins may call the API, and the headers that say so.
//!
//! Herald authenticates with a Bearer token (or `access_token` for `EventSource`), never with a
//! cookie, so no answer ever carries `Access-Control-Allow-Credentials` (SPEC §7). That is also
//! what makes `*` safe: a page of any origin can only use a token it already holds.

/// The preflight answer's allowed methods: every method the API takes from a browser.
const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";

/// The request headers allowed when a preflight does not name any.
const DEFAULT_ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// The configured allowed origins (`["*"]` allows any).
#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    origins: Vec<String>,
}

impl Cors {
    /// From `server.cors_allowed_origins`.
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            any: origins.iter().any(|o| o == "*"),
            origins: origins.iter().map(|o| o.trim_end_matches('/').to_string()).collect(),
        }
    }

    /// The headers to add to a response to a request from `origin`.
    ///
    /// - `*`: `Access-Control-Allow-Origin: *` on every answer (it does not depend on the request,
    ///   so no `Vary`).
    /// - A list: the request's origin echoed when it is listed; `Vary: Origin` on every answer,
    ///   granted or not, so that a shared cache never hands one origin's answer to another.
    ///   An unlisted origin gets no grant: the browser then refuses the response (the server
    ///   still answers).
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        if self.any {
            return vec![
                ("Access-Control-Allow-Origin", "*".to_string()),
                ("Access-Control-Expose-Headers", "Retry-After".to_string()),
            ];
        }
        let mut headers = vec![("Vary", "Origin".to_string())];
        if let Some(origin) = origin.filter(|o| self.origins.iter().any(|allowed| allowed == o)) {
            headers.push(("Access-Control-Allow-Origin", origin.to_string()));
            headers.push(("Access-Control-Expose-Headers", "Retry-After".to_string()));
        }
        headers
    }

    /// The headers of a preflight answer: [`Cors::headers`] plus the allowed methods and request
    /// headers when the origin is granted.
    pub fn preflight_headers(
        &self,
        origin: Option<&str>,
        requested_headers: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut headers = self.headers(origin);
        let granted = headers.iter().any(|(name, _)| *name == "Access-Control-Allow-Origin");
        if granted {
            headers.push(("Access-Control-Allow-Methods", ALLOW_METHODS.to_string()));
            headers.push((
                "Access-Control-Allow-Headers",
                requested_headers.unwrap_or(DEFAULT_ALLOW_HEADERS).to_string(),
            ));
            headers.push(("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_SECS.to_string()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn list(origins: &[&str]) -> Cors {
        Cors::new(&origins.iter().map(|o| o.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_listed_origin_is_echoed_with_vary() {
        let cors = list(&["https://app.example", "http://localhost:5173/"]);
        let h = cors.headers(Some("https://app.example"));
        assert_eq!(value(&h, "Access-Control-Allow-Origin"), Some("https://app.example"));
        assert_eq!(value(&h, "Vary"), Some("Origin"));
        assert_eq!(value(&h, "Access-Control-Allow-Credentials"), None);
        assert_eq!(value(&h, "Access-Control-Expose-Headers"), Some("Retry-After"));
        // A configured trailing slash still matches the browser's origin (which never has one).
        let h = cors.headers(Some("http://localhost:5173"));
        assert_eq!(value(&h, "Access-Control-Allow-Origin"), Some("http://localhost:5173"));
    }

    #[test]
    fn an_unlisted_or_missing_origin_gets_no_grant_but_still_vary() {
        let cors = list(&["https://app.example"]);
        for origin in [
            Some("https://evil.example"),
            Some("https://app.example.evil"),
            Some("http://app.example"),
            Some("null"),
            None,
        ] {
            let h = cors.headers(origin);
            assert_eq!(value(&h, "Access-Control-Allow-Origin"), None, "{origin:?}");
            assert_eq!(value(&h, "Vary"), Some("Origin"), "{origin:?}");
            assert_eq!(value(&h, "Access-Control-Allow-Credentials"), None, "{origin:?}");
            let pre = cors.preflight_headers(origin, Some("authorization"));
            assert_eq!(value(&pre, "Access-Control-Allow-Methods"), None, "{origin:?}");
            assert_eq!(value(&pre, "Access-Control-Allow-Headers"), None, "{origin:?}");
        }
    }

    #[test]
    fn star_answers_star_without_credentials() {
        let any = list(&["*"]);
        for origin in [Some("http://x.example"), Some("null"), None] {
            let h = any.headers(origin);
            assert_eq!(value(&h, "Access-Control-Allow-Origin"), Some("*"), "{origin:?}");
            assert_eq!(value(&h, "Access-Control-Allow-Credentials"), None, "{origin:?}");
            assert_eq!(value(&h, "Vary"), None, "the answer does not depend on Origin");
        }
        // `*` anywhere in the list wins over the exact entries.
        let mixed = list(&["https://app.example", "*"]);
        assert_eq!(
            value(
                &mixed.headers(Some("https://other.example")),
                "Access-Control-Allow-Origin"
            ),
            Some("*")
        );
    }

    #[test]
    fn preflight_grants_methods_and_the_requested_headers() {
        let any = list(&["*"]);
        let pre = any.preflight_headers(Some("http://x.example"), Some("authorization, content-type"));
        assert_eq!(value(&pre, "Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(value(&pre, "Access-Control-Allow-Methods"), Some(ALLOW_METHODS));
        // `Authorization` is never covered by a wildcard, so the requested names are echoed.
        assert_eq!(
            value(&pre, "Access-Control-Allow-Headers"),
            Some("authorization, content-type")
        );
        assert_eq!(value(&pre, "Access-Control-Max-Age"), Some("600"));
        assert_eq!(value(&pre, "Access-Control-Allow-Credentials"), None);

        let cors = list(&["https://app.example"]);
        let pre = cors.preflight_headers(Some("https://app.example"), None);
        assert_eq!(value(&pre, "Access-Control-Allow-Origin"), Some("https://app.example"));
        assert_eq!(value(&pre, "Vary"), Some("Origin"));
        assert_eq!(value(&pre, "Access-Control-Allow-Headers"), Some(DEFAULT_ALLOW_HEADERS));
    }
}
