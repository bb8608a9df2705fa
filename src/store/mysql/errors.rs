//! Sorts a MySQL driver failure into what the caller should do about it (see [`StoreError`]).

use ::mysql::DriverError;

use crate::store::backend::StoreError;

/// Sorts a driver failure into what the caller should do about it.
pub(super) fn map_err(e: ::mysql::Error) -> StoreError {
    use ::mysql::Error as E;
    match &e {
        E::IoError(_) | E::CodecError(_) => StoreError::Unavailable(e.to_string()),
        // Bad parameters are our bug and leave the connection usable; every other driver error
        // (timeouts, lost sync, failed connect) leaves it in an unknown state.
        E::DriverError(DriverError::Params(_) | DriverError::MixedParams | DriverError::MismatchedStmtParams(..)) => {
            StoreError::Other(e.to_string())
        }
        E::DriverError(_) => StoreError::Unavailable(e.to_string()),
        E::MySqlError(server) => match server.code {
            1062 => StoreError::Conflict,
            // Too many connections, shutdown, aborted/killed connection, network errors,
            // idle disconnect (4031), and the client-side gone-away / lost codes.
            1040 | 1053 | 1152 | 1158 | 1159 | 1160 | 1161 | 1184 | 1927 | 4031 | 2002 | 2003 | 2006 | 2013 => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        },
        _ => StoreError::Other(e.to_string()),
    }
}
