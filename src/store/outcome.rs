//! What a conditional UPDATE meant. Backends run the UPDATE (whose row count is the atomic
//! answer) and, only when it changed nothing, a read that explains why; these rules turn the two
//! into the caller's answer the same way on every dialect.

use super::backend::StoreError;
use super::model::SpendOutcome;

/// A refresh token's row as the explaining read returns it: `(user_id, family, expires_at_ms,
/// revoked_at_ms)`.
pub(crate) type RefreshTokenRow = (i64, String, i64, Option<i64>);

/// Explains a spend attempt from whether the conditional UPDATE hit and the token's row.
/// A spent or revoked token is `Reused` even once expired: presenting it is still a theft signal.
pub(crate) fn spend_outcome(updated: bool, row: Option<RefreshTokenRow>, now_ms: i64) -> SpendOutcome {
    match row {
        None => SpendOutcome::Unknown,
        Some((user_id, family, _, _)) if updated => SpendOutcome::Spent { user_id, family },
        Some((_, family, _, Some(_))) => SpendOutcome::Reused { family },
        Some((_, _, expires_at, None)) if expires_at <= now_ms => SpendOutcome::Expired,
        // Live and unrevoked yet the UPDATE missed: only possible if `now_ms` moved backwards
        // between the two statements; treat as expired rather than hand out a pair twice.
        Some(_) => SpendOutcome::Expired,
    }
}

/// Mark-read's answer from whether `UPDATE … SET read_at … WHERE read_at IS NULL` changed a row.
/// Already read still counts as success for its recipient (and keeps the first read time), so
/// only when nothing changed does `belongs_to_recipient` run, to tell "already read" from "not
/// yours / no such notification".
pub(crate) fn mark_read_outcome(
    updated: bool,
    belongs_to_recipient: impl FnOnce() -> Result<bool, StoreError>,
) -> Result<bool, StoreError> {
    if updated {
        return Ok(true);
    }
    belongs_to_recipient()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_outcome_prefers_reuse_over_expiry() {
        let row = |revoked| Some((1, "f".to_owned(), 10, revoked));
        assert_eq!(
            spend_outcome(false, row(Some(5)), 20),
            SpendOutcome::Reused { family: "f".into() }
        );
        assert_eq!(spend_outcome(false, row(None), 20), SpendOutcome::Expired);
        assert_eq!(spend_outcome(false, None, 20), SpendOutcome::Unknown);
    }

    #[test]
    fn spend_outcome_when_the_update_hit() {
        assert_eq!(
            spend_outcome(true, Some((7, "f".to_owned(), 30, Some(20))), 20),
            SpendOutcome::Spent {
                user_id: 7,
                family: "f".into()
            }
        );
        // A missed UPDATE on a live, unrevoked token never hands out a second pair.
        assert_eq!(
            spend_outcome(false, Some((7, "f".to_owned(), 30, None)), 20),
            SpendOutcome::Expired
        );
    }

    #[test]
    fn mark_read_asks_only_when_nothing_changed() {
        let never = || -> Result<bool, StoreError> { panic!("the UPDATE already answered") };
        assert!(mark_read_outcome(true, never).unwrap());
        assert!(mark_read_outcome(false, || Ok(true)).unwrap(), "already read");
        assert!(!mark_read_outcome(false, || Ok(false)).unwrap(), "not the recipient's");
        assert!(matches!(
            mark_read_outcome(false, || Err(StoreError::Other("x".into()))),
            Err(StoreError::Other(_))
        ));
    }
}
