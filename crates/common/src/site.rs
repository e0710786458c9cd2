//! Names that come from outside (alert labels, tags, configuration), validated once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    #[error("contains `{0}`; allowed are letters, digits, `-`, `_` and `.`")]
    BadCharacter(char),
    #[error("must start with a letter or a digit")]
    BadStart,
}

/// The name of a site (`site-a`, `eu-west-1`...): as in the alert labels, the NLB `site` tags and
/// the keys of `INFINISPAN_SITE_ENDPOINTS`, and as Infinispan names its backup sites.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteName(String);

impl SiteName {
    pub const MAX_LEN: usize = 63;

    pub fn parse(value: &str) -> Result<SiteName, NameError> {
        let value = value.trim();
        let first = value.chars().next().ok_or(NameError::Empty)?;
        if value.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { max: Self::MAX_LEN });
        }
        if !first.is_ascii_alphanumeric() {
            return Err(NameError::BadStart);
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(NameError::BadCharacter(bad));
        }
        Ok(SiteName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SiteName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        SiteName::parse(&value)
    }
}

impl From<SiteName> for String {
    fn from(name: SiteName) -> String {
        name.0
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The DNS name of a Global Accelerator (`a1234567890abcdef.awsglobalaccelerator.com`), as its
/// `DnsName` or `DualStackDnsName`; kept lower-case without a trailing dot so that comparisons
/// are exact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AcceleratorDns(String);

impl AcceleratorDns {
    pub const MAX_LEN: usize = 253;

    pub fn parse(value: &str) -> Result<AcceleratorDns, NameError> {
        let value = value.trim().trim_end_matches('.').to_ascii_lowercase();
        let first = value.chars().next().ok_or(NameError::Empty)?;
        if value.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { max: Self::MAX_LEN });
        }
        if !first.is_ascii_alphanumeric() {
            return Err(NameError::BadStart);
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
        {
            return Err(NameError::BadCharacter(bad));
        }
        Ok(AcceleratorDns(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an accelerator's `DnsName` or `DualStackDnsName` is this name.
    pub fn matches(&self, dns_name: &str) -> bool {
        dns_name
            .trim_end_matches('.')
            .eq_ignore_ascii_case(self.as_str())
    }
}

impl TryFrom<String> for AcceleratorDns {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        AcceleratorDns::parse(&value)
    }
}

impl From<AcceleratorDns> for String {
    fn from(name: AcceleratorDns) -> String {
        name.0
    }
}

impl fmt::Display for AcceleratorDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names() {
        assert_eq!(SiteName::parse(" site-a ").unwrap().as_str(), "site-a");
        assert_eq!(SiteName::parse(""), Err(NameError::Empty));
        assert_eq!(SiteName::parse("-a"), Err(NameError::BadStart));
        assert_eq!(SiteName::parse("site a"), Err(NameError::BadCharacter(' ')));
        assert_eq!(
            SiteName::parse("site'||'"),
            Err(NameError::BadCharacter('\''))
        );
        assert!(SiteName::parse(&"a".repeat(64)).is_err());
        assert!(SiteName::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn accelerator_dns_matches_either_case_and_trailing_dot() {
        let dns = AcceleratorDns::parse("A1234567890ABCDEF.awsglobalaccelerator.com.").unwrap();
        assert_eq!(dns.as_str(), "a1234567890abcdef.awsglobalaccelerator.com");
        assert!(dns.matches("a1234567890abcdef.awsglobalaccelerator.com"));
        assert!(dns.matches("A1234567890abcdef.awsglobalaccelerator.com."));
        assert!(!dns.matches("b1234567890abcdef.awsglobalaccelerator.com"));
        assert!(AcceleratorDns::parse("x/../y").is_err());
    }

    #[test]
    fn names_deserialize_only_when_valid() {
        let ok: Result<SiteName, _> = serde_json::from_str("\"site-b\"");
        assert!(ok.is_ok());
        let bad: Result<SiteName, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
    }
}
