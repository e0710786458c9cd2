//! The function's settings, read once at cold start. Errors name the variable and fail the
//! start (seed 003's variable names are still read, after the primary names).
//!
//! This module is the one place naming the variables the function reads ([`vars`]): the reader
//! ([`Settings::from_lookup`]) and the writer ([`Environment::to_vars`], what `deploy` sets)
//! spell them through the same constants, so what deploy creates is what the function reads.

use std::collections::{BTreeMap, BTreeSet};

use aws_topology::ec2::{EniId, InvalidId, RouteTableId, VpcId};
use common::config::{ConfigError, first_of, missing, parse_list};
use common::mode::Mode;

/// The names of the variables the function reads.
pub mod vars {
    /// The primary appliance's network interface, where the routes point while it serves.
    pub const PRIMARY_ENI: &str = "PRIMARY_ENI";
    /// Seed 003's name for [`PRIMARY_ENI`].
    pub const PRIMARY_ENI_SEED: &str = "host1eni";
    /// The standby appliance's network interface.
    pub const STANDBY_ENI: &str = "STANDBY_ENI";
    /// Seed 003's name for [`STANDBY_ENI`].
    pub const STANDBY_ENI_SEED: &str = "host2eni";
    pub const VPC_ID: &str = "VPC_ID";
    /// Seed 003's name for [`VPC_ID`].
    pub const VPC_ID_SEED: &str = "vpcid";
    /// Route table ids, separated by commas or spaces: when set, only their routes are moved.
    pub const ROUTE_TABLE_IDS: &str = "ROUTE_TABLE_IDS";
    /// Read by `common::notify` for every function, so named there.
    pub use common::config::NOTIFY_TOPIC_ARN;
    /// `enforce` (the default) or `monitor`: read by all three functions, so named in
    /// `common::mode`.
    pub use common::mode::MODE_VAR;
}

/// The names each setting is read from, the first set one winning; the seed's names stay valid.
pub const PRIMARY_ENI_NAMES: &[&str] = &[vars::PRIMARY_ENI, vars::PRIMARY_ENI_SEED];
pub const STANDBY_ENI_NAMES: &[&str] = &[vars::STANDBY_ENI, vars::STANDBY_ENI_SEED];
pub const VPC_ID_NAMES: &[&str] = &[vars::VPC_ID, vars::VPC_ID_SEED];

/// The deployment's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub primary_eni: EniId,
    pub standby_eni: EniId,
    pub vpc: VpcId,
    /// `ROUTE_TABLE_IDS`: when set, only routes in these tables are moved.
    pub allowed_tables: Option<BTreeSet<RouteTableId>>,
    /// Monitor: decide and report the routes that would move, move none.
    pub mode: Mode,
}

impl Settings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn required<T: std::str::FromStr<Err = InvalidId>>(
            names: &[&str],
            lookup: &impl Fn(&str) -> Option<String>,
        ) -> Result<T, ConfigError> {
            let value = first_of(names, lookup).ok_or_else(|| missing(names))?;
            value
                .parse()
                .map_err(|err: InvalidId| ConfigError::invalid(names.join(" or "), err.to_string()))
        }
        let primary_eni: EniId = required(PRIMARY_ENI_NAMES, &lookup)?;
        let standby_eni: EniId = required(STANDBY_ENI_NAMES, &lookup)?;
        if primary_eni == standby_eni {
            return Err(ConfigError::invalid(
                vars::STANDBY_ENI,
                format!(
                    "is the primary's ENI too ({primary_eni}); routes would have nowhere to go"
                ),
            ));
        }
        let vpc = required(VPC_ID_NAMES, &lookup)?;
        let allowed_tables = match first_of(&[vars::ROUTE_TABLE_IDS], &lookup) {
            None => None,
            Some(list) => {
                let ids = parse_list(&list)
                    .iter()
                    .map(|id| id.parse::<RouteTableId>())
                    .collect::<Result<BTreeSet<_>, _>>()
                    .map_err(|err| ConfigError::invalid(vars::ROUTE_TABLE_IDS, err.to_string()))?;
                if ids.is_empty() {
                    return Err(ConfigError::invalid(
                        vars::ROUTE_TABLE_IDS,
                        "lists no route table; unset it to allow every table of the VPC",
                    ));
                }
                Some(ids)
            }
        };
        Ok(Self {
            primary_eni,
            standby_eni,
            vpc,
            allowed_tables,
            mode: common::mode::from_lookup(&lookup)?,
        })
    }
}

/// What a deployment sets for the function: the writing side of [`Settings::from_lookup`] (and
/// of the notifier's topic). It writes the primary names only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub primary_eni: String,
    pub standby_eni: String,
    pub vpc_id: String,
    /// Empty: not written, routes of every table of the VPC may move.
    pub route_table_ids: Vec<String>,
    pub notify_topic_arn: Option<String>,
    /// Written only when not the default (`enforce`).
    pub mode: Mode,
}

impl Environment {
    /// The variables to set, by name.
    pub fn to_vars(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert(vars::PRIMARY_ENI.to_owned(), self.primary_eni.clone());
        env.insert(vars::STANDBY_ENI.to_owned(), self.standby_eni.clone());
        env.insert(vars::VPC_ID.to_owned(), self.vpc_id.clone());
        if !self.route_table_ids.is_empty() {
            env.insert(
                vars::ROUTE_TABLE_IDS.to_owned(),
                self.route_table_ids.join(","),
            );
        }
        if let Some(topic) = &self.notify_topic_arn {
            env.insert(vars::NOTIFY_TOPIC_ARN.to_owned(), topic.clone());
        }
        env.extend(common::mode::to_var(self.mode));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY_ENI_ID: &str = "eni-00fea71a1c9255bef";
    const STANDBY_ENI_ID: &str = "eni-071b4d6cbf57de651";

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn seed_variable_names_are_accepted() {
        let settings = Settings::from_lookup(lookup(&[
            ("host1eni", PRIMARY_ENI_ID),
            ("host2eni", STANDBY_ENI_ID),
            ("vpcid", "vpc-0bf5741eb0ef56a41"),
        ]))
        .unwrap();
        assert_eq!(settings.primary_eni.as_str(), PRIMARY_ENI_ID);
        assert_eq!(settings.standby_eni.as_str(), STANDBY_ENI_ID);
        assert_eq!(settings.vpc.as_str(), "vpc-0bf5741eb0ef56a41");
        assert_eq!(settings.allowed_tables, None);
    }

    #[test]
    fn settings_errors_name_the_variable() {
        let rows: [(&'static [(&str, &str)], &str); 5] = [
            (
                &[("STANDBY_ENI", STANDBY_ENI_ID), ("VPC_ID", "vpc-1")],
                "PRIMARY_ENI or host1eni",
            ),
            (
                &[
                    ("PRIMARY_ENI", "i-05a7780f2af7c126c"),
                    ("STANDBY_ENI", STANDBY_ENI_ID),
                    ("VPC_ID", "vpc-1"),
                ],
                "PRIMARY_ENI",
            ),
            (
                &[
                    ("PRIMARY_ENI", STANDBY_ENI_ID),
                    ("STANDBY_ENI", STANDBY_ENI_ID),
                    ("VPC_ID", "vpc-1"),
                ],
                "STANDBY_ENI",
            ),
            (
                &[
                    ("PRIMARY_ENI", PRIMARY_ENI_ID),
                    ("STANDBY_ENI", STANDBY_ENI_ID),
                ],
                "VPC_ID or vpcid",
            ),
            (
                &[
                    ("PRIMARY_ENI", PRIMARY_ENI_ID),
                    ("STANDBY_ENI", STANDBY_ENI_ID),
                    ("VPC_ID", "vpc-1"),
                    ("ROUTE_TABLE_IDS", "rtb-1, subnet-2"),
                ],
                "ROUTE_TABLE_IDS",
            ),
        ];
        for (vars, expected) in rows {
            let err = Settings::from_lookup(lookup(vars)).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn a_bad_mode_stops_the_start() {
        let err = Settings::from_lookup(lookup(&[
            ("PRIMARY_ENI", PRIMARY_ENI_ID),
            ("STANDBY_ENI", STANDBY_ENI_ID),
            ("VPC_ID", "vpc-1"),
            ("SITEFENCE_MODE", "observe"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("SITEFENCE_MODE"), "{err}");
    }

    #[test]
    fn route_table_allowlist_is_read() {
        let settings = Settings::from_lookup(lookup(&[
            ("PRIMARY_ENI", PRIMARY_ENI_ID),
            ("STANDBY_ENI", STANDBY_ENI_ID),
            ("VPC_ID", "vpc-1"),
            ("ROUTE_TABLE_IDS", "rtb-1 rtb-2,rtb-3"),
        ]))
        .unwrap();
        assert_eq!(settings.allowed_tables.map(|t| t.len()), Some(3));
    }

    fn deployed() -> Environment {
        Environment {
            primary_eni: PRIMARY_ENI_ID.into(),
            standby_eni: STANDBY_ENI_ID.into(),
            vpc_id: "vpc-0bf5741eb0ef56a41".into(),
            route_table_ids: vec!["rtb-0a1b2c3d".into(), "rtb-0e1f2a3b".into()],
            notify_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:routes".into()),
            mode: Mode::Monitor,
        }
    }

    #[test]
    fn what_the_environment_writes_the_function_reads() {
        let env = deployed().to_vars();
        let read = |name: &str| env.get(name).cloned();
        let settings = Settings::from_lookup(read).unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(settings.primary_eni.as_str(), PRIMARY_ENI_ID);
        assert_eq!(settings.standby_eni.as_str(), STANDBY_ENI_ID);
        assert_eq!(settings.vpc.as_str(), "vpc-0bf5741eb0ef56a41");
        let tables: Vec<&str> = settings
            .allowed_tables
            .iter()
            .flatten()
            .map(RouteTableId::as_str)
            .collect();
        assert_eq!(tables, ["rtb-0a1b2c3d", "rtb-0e1f2a3b"]);
        assert_eq!(
            common::config::notify_topic_arn(read).as_deref(),
            Some("arn:aws:sns:eu-west-1:123456789012:routes")
        );
        assert_eq!(settings.mode, Mode::Monitor);
    }

    #[test]
    fn no_route_tables_are_written_as_every_table() {
        let env = Environment {
            route_table_ids: Vec::new(),
            notify_topic_arn: None,
            mode: Mode::Enforce,
            ..deployed()
        }
        .to_vars();
        assert_eq!(env.len(), 3, "{env:?}");
        let settings = Settings::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(settings.allowed_tables, None);
        assert_eq!(settings.mode, Mode::Enforce);
    }
}
