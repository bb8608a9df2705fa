//! Turns `database.url` into a connected backend, and hides its password for logs.

use std::path::Path;

use super::backend::{Backend, StoreError};
use super::mysql::MysqlBackend;
use super::sqlite::SqliteBackend;

/// Opens one connection to the store named by `url` (`sqlite://PATH` or
/// `mysql://user:pass@host:port/db`); the caller runs `migrate` once at start-up.
pub fn open_backend(url: &str) -> Result<Box<dyn Backend>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Other("sqlite url has no file path".into()));
        }
        let path = Path::new(path);
        // A fresh machine has no `data/` directory yet; SQLite would refuse to create the file.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        return Ok(Box::new(SqliteBackend::open(path)?));
    }
    if url.starts_with("mysql://") {
        return Ok(Box::new(MysqlBackend::connect(url)?));
    }
    Err(StoreError::Other(format!(
        "unsupported database url {} (expected sqlite://PATH or mysql://user:pass@host:port/db)",
        redact(url)
    )))
}

/// The url with any password replaced by `***`, safe to log.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // The last `@` ends the user info: a password may itself contain a raw `@`.
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &userinfo[..colon],
        &url[authority_start + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("mysql://app:s3cr@t@db.local:3306/herald"),
            "mysql://app:***@db.local:3306/herald"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(redact("sqlite://data/herald.db"), "sqlite://data/herald.db");
        assert_eq!(redact("mysql://u:p@h/db?x=a@b"), "mysql://u:***@h/db?x=a@b");
        assert_eq!(redact("garbage"), "garbage");
    }

    #[test]
    fn unsupported_url_never_echoes_the_password() {
        let err = match open_backend("postgres://app:hunter2@db/herald") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("postgres must be rejected"),
        };
        assert!(err.contains("unsupported database url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn sqlite_url_creates_the_parent_directory() {
        let dir = std::env::temp_dir().join(format!("herald-url-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/nested/herald.db", dir.display());
        let mut backend = match open_backend(&url) {
            Ok(b) => b,
            Err(e) => panic!("open {url}: {e}"),
        };
        assert!(backend.ping().is_ok());
        assert!(dir.join("nested/herald.db").exists());
        drop(backend);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
