//! CORS for browser clients: which origins may call the API, and the headers that say so.

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

    /// The headers to add to a response to a request from `origin`; empty when it is not allowed
    /// (the browser then refuses the response, the server still answers).
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let Some(origin) = origin else {
            return Vec::new();
        };
        if !self.any && !self.origins.iter().any(|o| o == origin) {
            return Vec::new();
        }
        vec![
            ("Access-Control-Allow-Origin", origin.to_string()),
            ("Vary", "Origin".to_string()),
            ("Access-Control-Allow-Credentials", "true".to_string()),
            ("Access-Control-Expose-Headers", "Retry-After".to_string()),
        ]
    }

    /// The extra headers of a preflight answer.
    pub fn preflight_headers(
        &self,
        origin: Option<&str>,
        requested_headers: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut headers = self.headers(origin);
        if !headers.is_empty() {
            headers.push(("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS".to_string()));
            headers.push((
                "Access-Control-Allow-Headers",
                requested_headers
                    .unwrap_or("Authorization, Content-Type, Last-Event-ID")
                    .to_string(),
            ));
            headers.push(("Access-Control-Max-Age", "600".to_string()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_listed_origins_only() {
        let cors = Cors::new(&["https://app.example".to_string()]);
        assert!(cors.headers(Some("https://evil.example")).is_empty());
        assert!(cors.headers(None).is_empty());
        let h = cors.headers(Some("https://app.example"));
        assert!(h.contains(&("Access-Control-Allow-Origin", "https://app.example".into())));
        let any = Cors::new(&["*".to_string()]);
        assert!(!any.headers(Some("http://x")).is_empty());
        let pre = any.preflight_headers(Some("http://x"), Some("authorization"));
        assert!(pre.contains(&("Access-Control-Allow-Headers", "authorization".into())));
    }
}
