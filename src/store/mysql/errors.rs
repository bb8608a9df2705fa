//! Sorts a MySQL driver failure into what the caller should do about it (see [`StoreError`]).

use ::mysql::DriverError;

use crate::store::backend::StoreError;

/// Sorts a driver failure into what the caller should do about it.
pub(super) fn map_err(e: ::mysql::Error) -> StoreError {
    use ::mysql::Error as E;
    let why = describe(&e);
    match &e {
        E::IoError(_) | E::CodecError(_) => StoreError::Unavailable(why),
        // Bad parameters are our bug and leave the connection usable; every other driver error
        // (timeouts, lost sync, failed connect) leaves it in an unknown state.
        E::DriverError(DriverError::Params(_) | DriverError::MixedParams | DriverError::MismatchedStmtParams(..)) => {
            StoreError::Other(why)
        }
        E::DriverError(_) => StoreError::Unavailable(why),
        E::MySqlError(server) => match server.code {
            1062 => StoreError::Conflict,
            // Too many connections, shutdown, aborted/killed connection, network errors,
            // idle disconnect (4031), and the client-side gone-away / lost codes.
            1040 | 1053 | 1152 | 1158 | 1159 | 1160 | 1161 | 1184 | 1927 | 4031 | 2002 | 2003 | 2006 | 2013 => {
                StoreError::Unavailable(why)
            }
            _ => StoreError::Other(why),
        },
        _ => StoreError::Other(why),
    }
}

/// A driver failure as an operator reads it: the driver's own wrapping (`DriverError { … }`,
/// `MySqlError { … }`) is Rust debug text, so the inner error is shown instead.
fn describe(e: &::mysql::Error) -> String {
    use ::mysql::Error as E;
    match e {
        E::IoError(io) => format!("i/o error: {io}"),
        E::DriverError(d) => d.to_string(),
        E::MySqlError(server) => format!("server said: {} (error {})", server.message, server.code),
        E::UrlError(u) => format!("invalid url: {u}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_sentences_not_debug_text() {
        let refused = ::mysql::Error::DriverError(DriverError::CouldNotConnect(Some((
            "127.0.0.1:1".into(),
            "Connection refused".into(),
            std::io::ErrorKind::ConnectionRefused,
        ))));
        let text = map_err(refused).to_string();
        assert!(!text.contains("DriverError {"), "{text}");
        assert!(text.contains("127.0.0.1:1"), "{text}");
    }
}
