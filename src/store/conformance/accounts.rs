//! Users and refresh-token rotation.

use super::*;

pub(super) fn users(db: &mut dyn Backend) {
    let alice = user(db, "u_alice");
    assert_eq!(alice.username, "u_alice");
    assert!(alice.id > 0);
    assert!(matches!(db.create_user("u_alice", "x", NOW), Err(StoreError::Conflict)));
    // Usernames compare exactly on every backend (MySQL's default collation would fold case).
    let upper = user(db, "U_ALICE");
    assert_ne!(upper.id, alice.id);

    let creds = db.user_credentials("u_alice").expect("creds").expect("alice exists");
    assert_eq!((creds.id, creds.username.as_str()), (alice.id, "u_alice"));
    assert_eq!(creds.password_hash, "$argon2id$hash-of-u_alice");
    assert!(db.user_credentials("nobody").expect("creds").is_none());
    assert_eq!(db.user_by_id(alice.id).expect("by id"), Some(alice.clone()));
    assert_eq!(db.user_by_id(i64::MAX).expect("by id"), None);
    assert!(db.user_exists("u_alice").expect("exists"));
    assert!(!db.user_exists("u_alice ").expect("exists"));
    assert!(!db.user_exists("nobody").expect("exists"));
}

pub(super) fn token(user_id: i64, hash: &str, family: &str, expires_at_ms: i64) -> NewRefreshToken {
    NewRefreshToken {
        user_id,
        token_hash: hash.into(),
        family: family.into(),
        expires_at_ms,
    }
}

pub(super) fn refresh_rotation(db: &mut dyn Backend) {
    let bob = user(db, "r_bob");
    let other = user(db, "r_other");
    db.insert_refresh_token(&token(bob.id, "h1", "fam-1", NOW + HOUR_MS))
        .expect("insert");
    assert!(matches!(
        db.insert_refresh_token(&token(bob.id, "h1", "fam-1", NOW + HOUR_MS)),
        Err(StoreError::Conflict)
    ));

    assert_eq!(
        db.spend_refresh_token("h1", NOW).expect("spend"),
        SpendOutcome::Spent {
            user_id: bob.id,
            family: "fam-1".into()
        }
    );
    db.insert_refresh_token(&token(bob.id, "h2", "fam-1", NOW + HOUR_MS))
        .expect("insert");
    // Presenting the spent token again is reuse; the caller then revokes the family.
    assert_eq!(
        db.spend_refresh_token("h1", NOW + 1).expect("spend"),
        SpendOutcome::Reused { family: "fam-1".into() }
    );
    db.revoke_family("fam-1", NOW + 2).expect("revoke");
    assert_eq!(
        db.spend_refresh_token("h2", NOW + 3).expect("spend"),
        SpendOutcome::Reused { family: "fam-1".into() }
    );

    db.insert_refresh_token(&token(bob.id, "h3", "fam-2", NOW + 10))
        .expect("insert");
    assert_eq!(
        db.spend_refresh_token("h3", NOW + 10).expect("spend"),
        SpendOutcome::Expired
    );
    // Expired tokens are left as they are: still expired, not turned into reuse.
    assert_eq!(
        db.spend_refresh_token("h3", NOW + 11).expect("spend"),
        SpendOutcome::Expired
    );
    assert_eq!(
        db.spend_refresh_token("never-issued", NOW).expect("spend"),
        SpendOutcome::Unknown
    );

    // A family revoke leaves other families alone.
    db.insert_refresh_token(&token(bob.id, "h4", "fam-3", NOW + HOUR_MS))
        .expect("insert");
    db.insert_refresh_token(&token(bob.id, "h5", "fam-4", NOW + HOUR_MS))
        .expect("insert");
    db.revoke_family("fam-3", NOW).expect("revoke");
    assert_eq!(
        db.spend_refresh_token("h5", NOW).expect("spend"),
        SpendOutcome::Spent {
            user_id: bob.id,
            family: "fam-4".into()
        }
    );

    assert_eq!(
        db.refresh_token_family("h4", bob.id).expect("family"),
        Some("fam-3".into())
    );
    assert_eq!(db.refresh_token_family("h4", other.id).expect("family"), None);
    assert_eq!(db.refresh_token_family("nope", bob.id).expect("family"), None);
}
