//! The HTTP Basic check of the fence webhook.
//!
//! Both the user and the password must match (the seeds accepted a right user with any
//! password), compared in constant time, and a malformed header is a 401 like any other failure
//! (the seeds raised an undefined exception, i.e. a 500).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The realm announced in `WWW-Authenticate` on every 401.
pub const WWW_AUTHENTICATE: &str = r#"Basic realm="sitefence""#;

/// Why a request was not let in. Carries no part of what was sent, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailure {
    MissingHeader,
    NotBasic,
    Malformed,
    WrongCredentials,
}

impl AuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::MissingHeader => "Authorization header missing",
            AuthFailure::NotBasic => "Authorization scheme is not Basic",
            AuthFailure::Malformed => "Authorization header is not valid Basic credentials",
            AuthFailure::WrongCredentials => "wrong user or password",
        }
    }

    /// Whether reading the password again may turn this failure into a success: only well-formed
    /// Basic credentials that do not match, which is what a sender configured with a password
    /// rotated after ours was cached sends. The other failures are never re-read for, so that
    /// a scanner's requests cost Secrets Manager nothing.
    pub fn password_may_be_rotated(self) -> bool {
        self == AuthFailure::WrongCredentials
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Authorized,
    Unauthorized(AuthFailure),
}

/// The user and password the webhook must present.
#[derive(Debug, Clone)]
pub struct BasicCredentials {
    pub user: String,
    pub password: Secret,
}

/// Checks an `Authorization` header value (raw bytes, as received) against the expected
/// credentials. The header is never kept nor returned, so it cannot reach a log. An empty
/// expected password lets nobody in (`common::secret` refuses to read one; this is the backstop).
pub fn check_basic(header: Option<&[u8]>, expected: &BasicCredentials) -> AuthOutcome {
    let Some(header) = header else {
        return AuthOutcome::Unauthorized(AuthFailure::MissingHeader);
    };
    let (user, password) = match decode_basic(header) {
        Ok(pair) => pair,
        Err(failure) => return AuthOutcome::Unauthorized(failure),
    };
    // `&` and not `&&`: both comparisons always run, so the time does not say which one failed.
    let matches = digest(&user).ct_eq(&digest(expected.user.as_bytes()))
        & digest(&password).ct_eq(&digest(expected.password.expose().as_bytes()));
    if bool::from(matches) && !expected.password.expose().is_empty() {
        AuthOutcome::Authorized
    } else {
        AuthOutcome::Unauthorized(AuthFailure::WrongCredentials)
    }
}

// Hashing first makes the comparison independent of the lengths too.
fn digest(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `Basic base64(user:password)`, scheme case-insensitive; user and password are then
/// percent-decoded, as the seed did (Python's `unquote`), so existing webhook configurations
/// that percent-encode special characters keep working.
fn decode_basic(header: &[u8]) -> Result<(Vec<u8>, Vec<u8>), AuthFailure> {
    let header = std::str::from_utf8(header).map_err(|_| AuthFailure::Malformed)?;
    let mut parts = header.split_whitespace();
    let scheme = parts.next().ok_or(AuthFailure::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthFailure::NotBasic);
    }
    let token = parts.next().ok_or(AuthFailure::Malformed)?;
    if parts.next().is_some() {
        return Err(AuthFailure::Malformed);
    }
    let decoded = BASE64.decode(token).map_err(|_| AuthFailure::Malformed)?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or(AuthFailure::Malformed)?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    Ok((percent_decode(user), percent_decode(password)))
}

/// `%XX` → byte; anything else, including a `%` not followed by two hex digits, is kept as is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                input.get(i + 1).and_then(|b| hex(*b)),
                input.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> BasicCredentials {
        BasicCredentials {
            user: "keycloak".to_owned(),
            password: Secret::new("p@ss:word%"),
        }
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    fn check(header: Option<&str>) -> AuthOutcome {
        check_basic(header.map(str::as_bytes), &expected())
    }

    #[test]
    fn basic_auth_table() {
        use AuthFailure::*;
        use AuthOutcome::*;
        let right = basic("keycloak:p@ss:word%");
        let lower_scheme = right.replacen("Basic", "basic", 1);
        let encoded = basic("keycloak:p%40ss%3Aword%25");
        let wrong_password = basic("keycloak:nope");
        let wrong_user = basic("admin:p@ss:word%");
        let both_wrong = basic("admin:nope");
        let no_colon = basic("keycloak");
        let table: &[(&str, Option<&str>, AuthOutcome)] = &[
            ("right credentials", Some(&right), Authorized),
            (
                "scheme is case-insensitive",
                Some(&lower_scheme),
                Authorized,
            ),
            ("percent-encoded like the seed", Some(&encoded), Authorized),
            (
                "seed_accepted_right_user_wrong_password",
                Some(&wrong_password),
                Unauthorized(WrongCredentials),
            ),
            (
                "seed_accepted_wrong_user_right_password",
                Some(&wrong_user),
                Unauthorized(WrongCredentials),
            ),
            (
                "both wrong",
                Some(&both_wrong),
                Unauthorized(WrongCredentials),
            ),
            ("missing header", None, Unauthorized(MissingHeader)),
            ("bearer token", Some("Bearer abc"), Unauthorized(NotBasic)),
            (
                "seed_crashed_on_malformed_base64",
                Some("Basic !!!"),
                Unauthorized(Malformed),
            ),
            ("no colon", Some(&no_colon), Unauthorized(Malformed)),
            ("scheme only", Some("Basic"), Unauthorized(Malformed)),
            ("extra field", Some("Basic a b"), Unauthorized(Malformed)),
            ("empty", Some(""), Unauthorized(Malformed)),
        ];
        for (name, header, want) in table {
            assert_eq!(check(*header), *want, "{name}");
        }
    }

    #[test]
    fn empty_expected_password_lets_nobody_in() {
        let creds = BasicCredentials {
            user: "u".to_owned(),
            password: Secret::new(""),
        };
        for sent in ["u:", "u:x"] {
            assert_eq!(
                check_basic(Some(basic(sent).as_bytes()), &creds),
                AuthOutcome::Unauthorized(AuthFailure::WrongCredentials),
                "{sent}"
            );
        }
    }

    #[test]
    fn only_mismatched_credentials_are_worth_rereading_the_password() {
        use AuthFailure::*;
        let table = [
            (WrongCredentials, true),
            (MissingHeader, false),
            (NotBasic, false),
            (Malformed, false),
        ];
        for (failure, want) in table {
            assert_eq!(failure.password_may_be_rotated(), want, "{failure:?}");
        }
    }

    #[test]
    fn non_utf8_header_is_unauthorized_not_a_crash() {
        assert_eq!(
            check_basic(Some(&[0xff, 0xfe]), &expected()),
            AuthOutcome::Unauthorized(AuthFailure::Malformed)
        );
    }

    #[test]
    fn percent_decoding_keeps_stray_percent_signs() {
        assert_eq!(percent_decode(b"a%2"), b"a%2");
        assert_eq!(percent_decode(b"%zz%41"), b"%zzA");
    }
}
