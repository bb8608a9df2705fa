//! HS256 access and refresh tokens: issue, verify, and the helpers the token store needs.
//!
//! Verification runs on reactor threads for every protected request and STOMP `CONNECT`, so all
//! key material and validation rules are built once in [`JwtKeys::new`]; a verify is one HMAC and
//! two small JSON parses (a few microseconds). Time is always passed in as Unix seconds, so tests
//! and callers never depend on the wall clock inside this module.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Seconds a token is still accepted after its `exp`. Zero: a token is valid while
/// `now < exp`. A client whose token just expired gets `TOKEN_EXPIRED` and refreshes; clock skew
/// between Herald nodes only moves the end of a 15-minute lifetime by that skew.
pub const EXPIRY_LEEWAY_SECS: i64 = 0;

/// Longest token `verify` will parse. Herald's tokens are ~300 bytes; anything near this is junk,
/// refused before any base64 or JSON work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Which of the two token kinds a JWT is, carried in the `typ` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Short-lived bearer token for API calls and STOMP `CONNECT` (`typ: "access"`).
    Access,
    /// Long-lived token that may only be exchanged for a new pair (`typ: "refresh"`).
    Refresh,
}

impl TokenType {
    /// The `typ` claim value for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }

    /// Parses a `typ` claim value; `None` for anything Herald never issues.
    pub fn from_claim(typ: &str) -> Option<TokenType> {
        match typ {
            "access" => Some(TokenType::Access),
            "refresh" => Some(TokenType::Refresh),
            _ => None,
        }
    }
}

/// The claims of every Herald token; all six are required when verifying.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Username.
    pub sub: String,
    /// User id.
    pub uid: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Unique token id (128-bit hex).
    pub jti: String,
    /// `"access"` or `"refresh"`, see [`TokenType`].
    pub typ: String,
}

/// Why a token was refused; every variant is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Well-formed and correctly signed but past `exp`: answer 401 `TOKEN_EXPIRED` so the client refreshes.
    #[error("token expired")]
    Expired,
    /// Bad signature, `alg: none` or any algorithm but HS256, malformed, or missing/ill-typed claims:
    /// answer 401 `INVALID_TOKEN`. `issue` also reports its (unreachable) encoding failure as this.
    #[error("invalid token")]
    Invalid,
    /// A refresh token used as an access token or the reverse: answer 401 `INVALID_TOKEN`.
    #[error("wrong token type")]
    WrongType,
}

/// A freshly signed token and the claims inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT, `header.payload.signature`.
    pub token: String,
    /// The claims that were signed.
    pub claims: Claims,
}

/// Key material and validation rules, built once.
struct KeyMaterial {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    access_ttl_secs: i64,
    refresh_ttl_secs: i64,
}

/// HS256 signing and verification keys plus token lifetimes; cheap to clone and share across threads.
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<KeyMaterial>,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("JwtKeys")
            .field("algorithm", &"HS256")
            .field("access_ttl_secs", &self.inner.access_ttl_secs)
            .field("refresh_ttl_secs", &self.inner.refresh_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// `secret`'s UTF-8 bytes are the HMAC key (HS256), so other services verify Herald's tokens with the same string.
    pub fn new(secret: &str, access_ttl_secs: i64, refresh_ttl_secs: i64) -> JwtKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        // Only HS256 is listed, so `alg: none` (not even a parsable algorithm for the crate) and
        // HS384/HS512/RS*/ES*/… are all refused before any signature work.
        validation.algorithms = vec![Algorithm::HS256];
        // Expiry is checked by `verify` against the caller's `now_secs`, not the crate's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        // Presence of the other four claims is enforced by `Claims` deserialisation.
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `validate_aud` stays on with no audience configured: a token carrying any `aud` was
        // minted for some other service and is refused.
        JwtKeys {
            inner: Arc::new(KeyMaterial {
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                header: Header::new(Algorithm::HS256),
                validation,
                access_ttl_secs,
                refresh_ttl_secs,
            }),
        }
    }

    /// Signs a new token of kind `typ` for user `uid`/`username`, issued at `now_secs`, with a fresh `jti`.
    pub fn issue(&self, typ: TokenType, uid: i64, username: &str, now_secs: i64) -> Result<IssuedToken, JwtError> {
        let ttl = match typ {
            TokenType::Access => self.inner.access_ttl_secs,
            TokenType::Refresh => self.inner.refresh_ttl_secs,
        };
        let claims = Claims {
            sub: username.to_owned(),
            uid,
            iat: now_secs,
            exp: now_secs.saturating_add(ttl),
            jti: random_id(),
            typ: typ.as_str().to_owned(),
        };
        match jsonwebtoken::encode(&self.inner.header, &claims, &self.inner.encoding) {
            Ok(token) => Ok(IssuedToken { token, claims }),
            Err(e) => {
                // HMAC accepts any key and these claims always serialise; kept for completeness.
                log::error!("signing a {} token failed: {e}", typ.as_str());
                Err(JwtError::Invalid)
            }
        }
    }

    /// Verifies signature (HS256 only; `alg:none` and every other alg rejected), expiry against `now_secs` (leeway [`EXPIRY_LEEWAY_SECS`] = 0: valid while `now_secs < exp`), and typ.
    ///
    /// A correctly signed token of the wrong kind is [`JwtError::WrongType`] even when it has also
    /// expired, so a client never "refreshes" in answer to misusing a token.
    pub fn verify(&self, token: &str, expected: TokenType, now_secs: i64) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Invalid);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
            .map_err(|_| JwtError::Invalid)?
            .claims;
        match TokenType::from_claim(&claims.typ) {
            None => return Err(JwtError::Invalid),
            Some(typ) if typ != expected => return Err(JwtError::WrongType),
            Some(_) => {}
        }
        if now_secs >= claims.exp.saturating_add(EXPIRY_LEEWAY_SECS) {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }

    /// Lifetime of access tokens, in seconds.
    pub fn access_ttl_secs(&self) -> i64 {
        self.inner.access_ttl_secs
    }

    /// Lifetime of refresh tokens, in seconds.
    pub fn refresh_ttl_secs(&self) -> i64 {
        self.inner.refresh_ttl_secs
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive); `None`
/// without the scheme.
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => Some(value[7..].trim()),
        _ => None,
    }
}

/// Hex SHA-256 of a token, what the store keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    // jsonwebtoken's RustCrypto provider exposes SHA-256 (for JWK thumbprints); using it avoids a
    // direct `sha2` dependency. It cannot fail for SHA-256, but if it ever did, fail closed: a
    // unique value that matches no stored hash, so a lookup finds nothing rather than everything.
    match (DEFAULT_PROVIDER.key_utils.compute_digest)(token.as_bytes(), ThumbprintHash::SHA256) {
        Ok(digest) => to_hex(&digest),
        Err(e) => {
            log::error!("SHA-256 unavailable ({e}); token hash replaced by an unmatchable value");
            format!("unhashable-{}", random_id())
        }
    }
}

/// A fresh random id (jti, refresh family): 128 bits hex from getrandom.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        // Ids must be unique, not secret (they travel inside signed tokens), so a broken OS RNG
        // degrades to unique-but-predictable ids instead of taking the server down.
        log::error!("OS random source failed ({e}); using a time-and-counter id");
        bytes = fallback_unique_bytes();
    }
    to_hex(&bytes)
}

/// 16 bytes unique within this process (time, pid, counter) for when the OS RNG fails.
fn fallback_unique_bytes() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let low = (u64::from(std::process::id()) << 40) ^ count;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(nanos as u64).to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes
}

/// Lower-case hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Instant;

    const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
    const NOW: i64 = 1_755_183_300; // 2025-08-14T14:55:00Z
    const ACCESS_TTL: i64 = 15 * 60;
    const REFRESH_TTL: i64 = 14 * 24 * 3600;

    fn keys() -> JwtKeys {
        JwtKeys::new(SECRET, ACCESS_TTL, REFRESH_TTL)
    }

    /// Unpadded base64url, hand-rolled so tests can forge tokens byte by byte.
    fn b64url(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    fn valid_claims_json(typ: &str) -> Value {
        json!({"sub":"alice","uid":7,"iat":NOW,"exp":NOW + 60,"jti":"00112233445566778899aabbccddeeff","typ":typ})
    }

    /// Signs arbitrary claims with `alg` and the given secret, the way another service would.
    fn sign_with(alg: Algorithm, secret: &str, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn verify_access(token: &str) -> Result<Claims, JwtError> {
        keys().verify(token, TokenType::Access, NOW)
    }

    #[test]
    fn round_trip_both_kinds() {
        let keys = keys();
        for (typ, ttl) in [(TokenType::Access, ACCESS_TTL), (TokenType::Refresh, REFRESH_TTL)] {
            let issued = keys.issue(typ, 42, "alice", NOW).unwrap();
            assert_eq!(issued.token.matches('.').count(), 2);
            let claims = keys.verify(&issued.token, typ, NOW).unwrap();
            assert_eq!(claims, issued.claims);
            assert_eq!(claims.sub, "alice");
            assert_eq!(claims.uid, 42);
            assert_eq!(claims.iat, NOW);
            assert_eq!(claims.exp, NOW + ttl);
            assert_eq!(claims.typ, typ.as_str());
            assert_eq!(claims.jti.len(), 32);
        }
        assert_eq!(keys.access_ttl_secs(), ACCESS_TTL);
        assert_eq!(keys.refresh_ttl_secs(), REFRESH_TTL);
    }

    #[test]
    fn jti_is_fresh_per_token() {
        let keys = keys();
        let a = keys.issue(TokenType::Access, 1, "alice", NOW).unwrap();
        let b = keys.issue(TokenType::Access, 1, "alice", NOW).unwrap();
        assert_ne!(a.claims.jti, b.claims.jti);
        assert_ne!(a.token, b.token);
    }

    #[test]
    fn header_is_plain_hs256_jwt() {
        let issued = keys().issue(TokenType::Access, 1, "alice", NOW).unwrap();
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn other_services_verify_with_the_secret_string() {
        let issued = keys().issue(TokenType::Access, 9, "bob", NOW).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        let decoded =
            jsonwebtoken::decode::<Value>(&issued.token, &DecodingKey::from_secret(SECRET.as_bytes()), &validation)
                .unwrap();
        assert_eq!(decoded.claims["sub"], "bob");
        assert_eq!(decoded.claims["typ"], "access");
        // And the reverse: a token minted elsewhere with the same string verifies here.
        let foreign = sign_with(Algorithm::HS256, SECRET, &valid_claims_json("access"));
        assert_eq!(verify_access(&foreign).unwrap().uid, 7);
    }

    #[test]
    fn expiry_boundary() {
        let keys = keys();
        let issued = keys.issue(TokenType::Access, 1, "alice", NOW).unwrap();
        let exp = NOW + ACCESS_TTL;
        assert!(keys.verify(&issued.token, TokenType::Access, exp - 1).is_ok());
        assert_eq!(
            keys.verify(&issued.token, TokenType::Access, exp),
            Err(JwtError::Expired)
        );
        assert_eq!(
            keys.verify(&issued.token, TokenType::Access, i64::MAX),
            Err(JwtError::Expired)
        );
        // Far-future exp saturates instead of overflowing.
        let long = JwtKeys::new(SECRET, i64::MAX, i64::MAX);
        let issued = long.issue(TokenType::Access, 1, "alice", NOW).unwrap();
        assert_eq!(issued.claims.exp, i64::MAX);
        assert!(long.verify(&issued.token, TokenType::Access, NOW).is_ok());
    }

    #[test]
    fn tampered_signature_rejected() {
        let issued = keys().issue(TokenType::Access, 1, "alice", NOW).unwrap();
        let (message, signature) = issued.token.rsplit_once('.').unwrap();
        let mut sig: Vec<u8> = signature.bytes().collect();
        sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
        let forged = format!("{message}.{}", String::from_utf8(sig).unwrap());
        assert_eq!(verify_access(&forged), Err(JwtError::Invalid));
        // Signature dropped entirely.
        assert_eq!(verify_access(&format!("{message}.")), Err(JwtError::Invalid));
        assert_eq!(verify_access(message), Err(JwtError::Invalid));
    }

    #[test]
    fn tampered_payload_rejected() {
        let issued = keys().issue(TokenType::Access, 1, "alice", NOW).unwrap();
        let mut parts = issued.token.split('.');
        let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
        let mut claims = serde_json::to_value(&issued.claims).unwrap();
        claims["uid"] = json!(1000);
        claims["sub"] = json!("admin");
        let payload = b64url(claims.to_string().as_bytes());
        let forged = format!("{header}.{payload}.{signature}");
        assert_eq!(verify_access(&forged), Err(JwtError::Invalid));
    }

    #[test]
    fn other_secret_rejected() {
        let other = JwtKeys::new("another-secret-also-at-least-32-bytes!!", ACCESS_TTL, REFRESH_TTL);
        let issued = other.issue(TokenType::Access, 1, "alice", NOW).unwrap();
        assert_eq!(verify_access(&issued.token), Err(JwtError::Invalid));
        // A secret that differs only by a trailing byte is just as foreign.
        let near = sign_with(Algorithm::HS256, &format!("{SECRET}x"), &valid_claims_json("access"));
        assert_eq!(verify_access(&near), Err(JwtError::Invalid));
    }

    #[test]
    fn alg_none_rejected() {
        let payload = b64url(valid_claims_json("access").to_string().as_bytes());
        let real = keys().issue(TokenType::Access, 7, "alice", NOW).unwrap();
        let real_sig = real.token.rsplit_once('.').unwrap().1.to_owned();
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let header = b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
            for sig in ["", real_sig.as_str()] {
                let forged = format!("{header}.{payload}.{sig}");
                assert_eq!(
                    verify_access(&forged),
                    Err(JwtError::Invalid),
                    "alg {alg:?} sig {sig:?}"
                );
            }
        }
        let no_alg = b64url(br#"{"typ":"JWT"}"#);
        assert_eq!(verify_access(&format!("{no_alg}.{payload}.")), Err(JwtError::Invalid));
    }

    #[test]
    fn other_hmac_algorithms_with_same_secret_rejected() {
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign_with(alg, SECRET, &valid_claims_json("access"));
            assert_eq!(verify_access(&token), Err(JwtError::Invalid), "{alg:?}");
        }
        // Relabelling a genuine HS256 token's header as HS512 breaks it too.
        let real = keys().issue(TokenType::Access, 7, "alice", NOW).unwrap();
        let (_, rest) = real.token.split_once('.').unwrap();
        let header = b64url(br#"{"alg":"HS512","typ":"JWT"}"#);
        assert_eq!(verify_access(&format!("{header}.{rest}")), Err(JwtError::Invalid));
    }

    #[test]
    fn wrong_type_both_ways() {
        let keys = keys();
        let access = keys.issue(TokenType::Access, 1, "alice", NOW).unwrap();
        let refresh = keys.issue(TokenType::Refresh, 1, "alice", NOW).unwrap();
        assert_eq!(
            keys.verify(&refresh.token, TokenType::Access, NOW),
            Err(JwtError::WrongType)
        );
        assert_eq!(
            keys.verify(&access.token, TokenType::Refresh, NOW),
            Err(JwtError::WrongType)
        );
        // Wrong kind wins over expiry.
        assert_eq!(
            keys.verify(&access.token, TokenType::Refresh, i64::MAX),
            Err(JwtError::WrongType)
        );
        // A `typ` Herald never issues is simply invalid.
        for typ in ["id", "", "ACCESS", "Access"] {
            let token = sign_with(Algorithm::HS256, SECRET, &valid_claims_json(typ));
            assert_eq!(verify_access(&token), Err(JwtError::Invalid), "{typ:?}");
        }
    }

    #[test]
    fn garbage_rejected() {
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let garbage = [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b",
            "Bearer abc",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9..",
            "eyJhbGciOiJIUzI1NiJ9.e30.",
            "eyJhbGciOiJIUzI1NiJ9.!!!.@@@",
            "😀.😀.😀",
            "\0\0\0",
            long.as_str(),
        ];
        for g in garbage {
            assert_eq!(verify_access(g), Err(JwtError::Invalid), "{g:?}");
        }
        // Payloads that are not JSON objects.
        let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        for payload in [&b"null"[..], b"[]", b"42", b"\"s\"", b"{", b"\xff\xfe"] {
            let token = format!("{header}.{}.sig", b64url(payload));
            assert_eq!(verify_access(&token), Err(JwtError::Invalid));
        }
    }

    #[test]
    fn missing_or_ill_typed_claims_rejected() {
        let full = valid_claims_json("access");
        assert!(verify_access(&sign_with(Algorithm::HS256, SECRET, &full)).is_ok());
        for claim in ["sub", "uid", "iat", "exp", "jti", "typ"] {
            let mut claims = full.clone();
            claims.as_object_mut().unwrap().remove(claim);
            let token = sign_with(Algorithm::HS256, SECRET, &claims);
            assert_eq!(verify_access(&token), Err(JwtError::Invalid), "without {claim}");
            let mut claims = full.clone();
            claims[claim] = Value::Null;
            let token = sign_with(Algorithm::HS256, SECRET, &claims);
            assert_eq!(verify_access(&token), Err(JwtError::Invalid), "{claim}: null");
        }
        for (claim, bad) in [
            ("uid", json!("7")),
            ("uid", json!(7.5)),
            ("exp", json!("soon")),
            ("exp", json!(-1)),
            ("iat", json!([1])),
            ("sub", json!(5)),
            ("typ", json!({"k":"access"})),
        ] {
            let mut claims = full.clone();
            claims[claim] = bad.clone();
            let token = sign_with(Algorithm::HS256, SECRET, &claims);
            assert_eq!(verify_access(&token), Err(JwtError::Invalid), "{claim}: {bad}");
        }
    }

    #[test]
    fn foreign_audience_rejected() {
        let mut claims = valid_claims_json("access");
        claims["aud"] = json!("some-other-service");
        let token = sign_with(Algorithm::HS256, SECRET, &claims);
        assert_eq!(verify_access(&token), Err(JwtError::Invalid));
    }

    #[test]
    fn keys_are_clone_send_sync_and_debug_hides_secret() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<JwtKeys>();
        let shown = format!("{:?}", keys());
        assert!(!shown.contains(SECRET));
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            token_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let issued = keys().issue(TokenType::Refresh, 1, "alice", NOW).unwrap();
        let h = token_hash(&issued.token);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(h, token_hash(&issued.token));
    }

    #[test]
    fn random_ids_are_128_bit_hex_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let a = fallback_unique_bytes();
        let b = fallback_unique_bytes();
        assert_ne!(a, b);
    }

    #[test]
    fn measure_verify_cost() {
        let keys = keys();
        let token = keys.issue(TokenType::Access, 1, "alice", NOW).unwrap().token;
        let rounds = 2_000;
        let start = Instant::now();
        for _ in 0..rounds {
            assert!(keys.verify(&token, TokenType::Access, NOW).is_ok());
        }
        let per = start.elapsed() / rounds;
        let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        println!("JwtKeys::verify ({profile}): {per:?} per token ({} bytes)", token.len());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("  bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("abc"), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }
}
