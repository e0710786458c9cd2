//! Route 53's `HealthCheckVersion`, which moto does not keep (docs/aws-behaviours.md #14).
//!
//! Route 53 increments a health check's version on every update and refuses an
//! `UpdateHealthCheck` that names another version than the current one
//! (`HealthCheckVersionMismatch`, 409). moto 5.2.5 answers version 1 forever and accepts any
//! version, so a writer that loses a race would never find out. The front keeps the version of
//! every health check updated through it, refuses a stale update before moto sees it, and
//! writes the version it keeps into moto's answers (`GetHealthCheck`, `UpdateHealthCheck`,
//! `CreateHealthCheck`, `ListHealthChecks`).
//!
//! A write made straight to moto, not through the front, keeps the version: the bench puts
//! the health check back on its primary path that way, standing for "nothing changed since the
//! function's last write" (BENCHMARKS.md).

use std::collections::BTreeMap;

use super::Call;

/// The version moto reports for every health check, and Route 53's first version.
const FIRST_VERSION: i64 = 1;
const VERSION_OPEN: &str = "<HealthCheckVersion>";
const VERSION_CLOSE: &str = "</HealthCheckVersion>";

/// The versions of the health checks the front has seen updated, by id.
#[derive(Debug, Default)]
pub struct Versions(BTreeMap<String, i64>);

/// Whether an update may reach moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it; once moto has applied it, call [`Versions::updated`].
    Forward { id: String },
    /// Answer `HealthCheckVersionMismatch`: the request named another version.
    Mismatch {
        id: String,
        named: i64,
        current: i64,
    },
}

/// The health check's id when `call` is an `UpdateHealthCheck` of `path`.
pub fn updated_id(call: &Call, path: &str) -> Option<String> {
    if call.service != "route53" || call.operation != "UpdateHealthCheck" {
        return None;
    }
    health_check_id(path)
}

/// Whether `call` answers with health checks whose version the front rewrites.
pub fn reports_versions(call: &Call) -> bool {
    call.service == "route53"
        && matches!(
            call.operation.as_str(),
            "GetHealthCheck" | "UpdateHealthCheck" | "CreateHealthCheck" | "ListHealthChecks"
        )
}

/// `/2013-04-01/healthcheck/{id}` → the id.
fn health_check_id(path: &str) -> Option<String> {
    let id = path.strip_prefix("/2013-04-01/healthcheck/")?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn element<'x>(xml: &'x str, open: &str, close: &str) -> Option<&'x str> {
    let start = xml.find(open)? + open.len();
    let end = start + xml[start..].find(close)?;
    Some(&xml[start..end])
}

impl Versions {
    pub fn current(&self, id: &str) -> i64 {
        self.0.get(id).copied().unwrap_or(FIRST_VERSION)
    }

    /// Checks an `UpdateHealthCheck` of `id` whose body is `body`. An update that names no
    /// version is applied whatever the version (the parameter is optional in the API).
    pub fn check(&self, id: String, body: &[u8]) -> Verdict {
        let named = std::str::from_utf8(body)
            .ok()
            .and_then(|xml| element(xml, VERSION_OPEN, VERSION_CLOSE))
            .and_then(|text| text.trim().parse::<i64>().ok());
        let current = self.current(&id);
        match named {
            Some(named) if named != current => Verdict::Mismatch { id, named, current },
            _ => Verdict::Forward { id },
        }
    }

    /// moto applied an update of `id`: the next version.
    pub fn updated(&mut self, id: &str) {
        let next = self.current(id) + 1;
        self.0.insert(id.to_owned(), next);
    }

    /// `xml` with every `<HealthCheck>`'s version replaced by the one the front keeps.
    pub fn rewrite(&self, xml: &str) -> String {
        const OPEN: &str = "<HealthCheck>";
        const CLOSE: &str = "</HealthCheck>";
        let mut out = String::with_capacity(xml.len());
        let mut rest = xml;
        while let Some(start) = rest.find(OPEN) {
            let Some(length) = rest[start..].find(CLOSE) else {
                break;
            };
            let end = start + length + CLOSE.len();
            out.push_str(&rest[..start]);
            out.push_str(&self.rewrite_one(&rest[start..end]));
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    fn rewrite_one(&self, health_check: &str) -> String {
        let (Some(id), Some(start)) = (
            element(health_check, "<Id>", "</Id>"),
            health_check.find(VERSION_OPEN),
        ) else {
            return health_check.to_owned();
        };
        let value_start = start + VERSION_OPEN.len();
        let Some(value_length) = health_check[value_start..].find(VERSION_CLOSE) else {
            return health_check.to_owned();
        };
        format!(
            "{}{}{}",
            &health_check[..value_start],
            self.current(id),
            &health_check[value_start + value_length..]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_front::Protocol;

    const ID: &str = "2b3c1a7e-1111-4c2d-9e0f-abcdef012345";

    fn update(version: Option<i64>) -> Vec<u8> {
        let version = version
            .map(|v| format!("<HealthCheckVersion>{v}</HealthCheckVersion>"))
            .unwrap_or_default();
        format!(
            "<UpdateHealthCheckRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             {version}<ResourcePath>/lb-check-failed-over</ResourcePath></UpdateHealthCheckRequest>"
        )
        .into_bytes()
    }

    #[test]
    fn a_stale_update_is_refused_and_a_current_one_moves_the_version() {
        let mut versions = Versions::default();
        assert_eq!(
            versions.check(ID.to_owned(), &update(Some(1))),
            Verdict::Forward { id: ID.to_owned() }
        );
        versions.updated(ID);
        assert_eq!(
            versions.check(ID.to_owned(), &update(Some(1))),
            Verdict::Mismatch {
                id: ID.to_owned(),
                named: 1,
                current: 2
            }
        );
        assert_eq!(
            versions.check(ID.to_owned(), &update(Some(2))),
            Verdict::Forward { id: ID.to_owned() }
        );
        // No version named: applied whatever the version, and it still counts as an update.
        assert_eq!(
            versions.check(ID.to_owned(), &update(None)),
            Verdict::Forward { id: ID.to_owned() }
        );
    }

    #[test]
    fn answers_carry_the_kept_version_of_each_health_check() {
        let mut versions = Versions::default();
        versions.updated(ID);
        versions.updated(ID);
        let other = "9f0e2d4c-2222-4c2d-9e0f-abcdef012345";
        let xml = format!(
            "<ListHealthChecksResponse><HealthChecks>\
             <HealthCheck><Id>{ID}</Id><HealthCheckConfig><Type>HTTPS</Type></HealthCheckConfig>\
             <HealthCheckVersion>1</HealthCheckVersion></HealthCheck>\
             <HealthCheck><Id>{other}</Id><HealthCheckVersion>1</HealthCheckVersion></HealthCheck>\
             </HealthChecks></ListHealthChecksResponse>"
        );
        let rewritten = versions.rewrite(&xml);
        assert_eq!(
            rewritten,
            xml.replacen(
                "<HealthCheckVersion>1</HealthCheckVersion>",
                "<HealthCheckVersion>3</HealthCheckVersion>",
                1
            )
        );
    }

    #[test]
    fn only_updates_of_one_health_check_are_checked() {
        let call = |operation: &str| Call {
            service: "route53".to_owned(),
            operation: operation.to_owned(),
            protocol: Protocol::RestXml,
        };
        let path = format!("/2013-04-01/healthcheck/{ID}");
        assert_eq!(
            updated_id(&call("UpdateHealthCheck"), &path).as_deref(),
            Some(ID)
        );
        assert_eq!(updated_id(&call("GetHealthCheck"), &path), None);
        assert_eq!(
            updated_id(
                &call("UpdateHealthCheck"),
                &format!("/2013-04-01/healthcheck/{ID}/status")
            ),
            None
        );
        assert!(reports_versions(&call("ListHealthChecks")));
        assert!(!reports_versions(&call("GetHealthCheckStatus")));
    }
}
