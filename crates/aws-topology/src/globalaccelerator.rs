//! The accelerator in front of both sites: its endpoint groups, which site each endpoint
//! belongs to, and removing endpoints.
//!
//! Every page of `ListAccelerators`, every listener and every endpoint group is read (the seeds
//! read only the first of each), the accelerator is matched on `DnsName` or `DualStackDnsName`,
//! and endpoints are removed with `RemoveEndpoints` (no read-modify-write of the group), retried
//! on `TransactionInProgressException` and throttling within a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_globalaccelerator::Client;
use aws_sdk_globalaccelerator::types::{EndpointDescription, EndpointIdentifier, HealthState};
use common::site::{AcceleratorDns, SiteName};
use serde::Serialize;

use crate::elbv2::SiteTags;
use crate::retry::{self, AwsError, Backoff};

/// `RemoveEndpoints` takes at most this many endpoints.
pub const ENDPOINTS_PER_REMOVE: usize = 10;

/// The health Global Accelerator reports for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    Healthy,
    Unhealthy,
    Initial,
    Unknown,
}

impl Health {
    fn from_sdk(state: Option<&HealthState>) -> Health {
        match state {
            Some(HealthState::Healthy) => Health::Healthy,
            Some(HealthState::Unhealthy) => Health::Unhealthy,
            Some(HealthState::Initial) => Health::Initial,
            _ => Health::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub id: String,
    /// From the load balancer's `site` tag; `None` when unknown (never guessed).
    pub site: Option<SiteName>,
    pub weight: Option<i32>,
    pub health: Health,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointGroup {
    pub arn: String,
    pub region: String,
    pub endpoints: Vec<Endpoint>,
}

/// An accelerator's endpoint groups (over all its listeners) with each endpoint's site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub accelerator_arn: String,
    pub groups: Vec<EndpointGroup>,
}

/// One endpoint as `DescribeEndpointGroup` returns it (no site).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    pub id: String,
    pub weight: Option<i32>,
    pub health: Health,
}

/// One group's current endpoints, re-read cheaply with `DescribeEndpointGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub arn: String,
    pub region: String,
    pub endpoints: Vec<EndpointState>,
}

/// A cached topology no longer matches the accelerator: resolve it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("endpoint {0} was not in the cached topology or has no known site")]
    UnknownEndpoint(String),
    #[error("endpoint group {0} was not in the cached topology")]
    UnknownGroup(String),
}

impl Topology {
    /// The cached topology with each group's endpoints replaced by their current state, the
    /// sites taken from the cache. Any endpoint the cache does not know with a site makes it
    /// stale.
    pub fn refreshed(&self, states: Vec<GroupState>) -> Result<Topology, Stale> {
        let sites: BTreeMap<&str, &SiteName> = self
            .groups
            .iter()
            .flat_map(|g| g.endpoints.iter())
            .filter_map(|e| Some((e.id.as_str(), e.site.as_ref()?)))
            .collect();
        let known_groups: BTreeSet<&str> = self.groups.iter().map(|g| g.arn.as_str()).collect();
        let mut groups = Vec::with_capacity(states.len());
        for state in states {
            if !known_groups.contains(state.arn.as_str()) {
                return Err(Stale::UnknownGroup(state.arn));
            }
            let endpoints = state
                .endpoints
                .into_iter()
                .map(|e| match sites.get(e.id.as_str()) {
                    Some(site) => Ok(Endpoint {
                        site: Some((*site).clone()),
                        id: e.id,
                        weight: e.weight,
                        health: e.health,
                    }),
                    None => Err(Stale::UnknownEndpoint(e.id)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            groups.push(EndpointGroup {
                arn: state.arn,
                region: state.region,
                endpoints,
            });
        }
        Ok(Topology {
            accelerator_arn: self.accelerator_arn.clone(),
            groups,
        })
    }
}

/// What a removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removal {
    pub removed: Vec<String>,
    /// Endpoints that were no longer in the group (removed earlier, e.g. by a concurrent fence).
    pub already_gone: Vec<String>,
}

/// Global Accelerator (its control plane lives in `us-west-2`) plus the ELBv2 tags that say
/// which site an endpoint belongs to.
pub struct GlobalAccelerator {
    client: Client,
    tags: SiteTags,
    backoff: Backoff,
}

impl GlobalAccelerator {
    /// `config`'s region must be the Global Accelerator API's (see `ACCELERATOR_REGION`); ELBv2
    /// calls use the region of each load balancer's ARN.
    pub fn new(config: &SdkConfig) -> GlobalAccelerator {
        GlobalAccelerator {
            client: Client::new(config),
            tags: SiteTags::new(config),
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> GlobalAccelerator {
        self.backoff = backoff;
        self
    }

    /// The ARN of the accelerator whose `DnsName` or `DualStackDnsName` is `dns`, over every
    /// page of `ListAccelerators`.
    pub async fn find_accelerator(&self, dns: &AcceleratorDns) -> Result<Option<String>, AwsError> {
        let mut pages = self.client.list_accelerators().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListAccelerators", e))?;
            let found = page.accelerators().iter().find(|a| {
                a.dns_name().is_some_and(|n| dns.matches(n))
                    || a.dual_stack_dns_name().is_some_and(|n| dns.matches(n))
            });
            if let Some(arn) = found.and_then(|a| a.accelerator_arn()) {
                return Ok(Some(arn.to_owned()));
            }
        }
        Ok(None)
    }

    /// The whole topology of the accelerator `dns`; `None` when no accelerator has that name.
    pub async fn topology(&self, dns: &AcceleratorDns) -> Result<Option<Topology>, AwsError> {
        let Some(accelerator_arn) = self.find_accelerator(dns).await? else {
            return Ok(None);
        };
        let mut listeners = Vec::new();
        let mut pages = self
            .client
            .list_listeners()
            .accelerator_arn(&accelerator_arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListListeners", e))?;
            listeners.extend(
                page.listeners()
                    .iter()
                    .filter_map(|l| l.listener_arn().map(str::to_owned)),
            );
        }
        let mut states = Vec::new();
        for listener in &listeners {
            let mut pages = self
                .client
                .list_endpoint_groups()
                .listener_arn(listener)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| AwsError::from_sdk("ListEndpointGroups", e))?;
                states.extend(page.endpoint_groups().iter().filter_map(|g| {
                    Some(group_state(
                        g.endpoint_group_arn()?,
                        g.endpoint_group_region(),
                        g.endpoint_descriptions(),
                    ))
                }));
            }
        }
        let ids: Vec<String> = states
            .iter()
            .flat_map(|g| g.endpoints.iter().map(|e| e.id.clone()))
            .collect();
        let sites = self.tags.sites(&ids).await?;
        Ok(Some(assemble(accelerator_arn, states, &sites)))
    }

    /// One group's current endpoints and health (one call: the warm path).
    pub async fn describe_group(&self, arn: &str) -> Result<GroupState, AwsError> {
        let output = self
            .client
            .describe_endpoint_group()
            .endpoint_group_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeEndpointGroup", e))?;
        let group = output.endpoint_group().ok_or_else(|| AwsError {
            operation: "DescribeEndpointGroup",
            code: None,
            message: format!("no endpoint group in the answer for {arn}"),
            retryable: true,
        })?;
        Ok(group_state(
            group.endpoint_group_arn().unwrap_or(arn),
            group.endpoint_group_region(),
            group.endpoint_descriptions(),
        ))
    }

    /// Removes `endpoint_ids` from the group, at most [`ENDPOINTS_PER_REMOVE`] per call, each
    /// call retried within `deadline`. Endpoints already gone count as removed.
    pub async fn remove_endpoints(
        &self,
        group_arn: &str,
        endpoint_ids: &[String],
        deadline: Instant,
    ) -> Result<Removal, AwsError> {
        let mut removal = Removal::default();
        for chunk in endpoint_ids.chunks(ENDPOINTS_PER_REMOVE) {
            let mut pending = chunk.to_vec();
            loop {
                let result = retry::retry(
                    "RemoveEndpoints",
                    &self.backoff,
                    deadline,
                    AwsError::retry,
                    || self.remove_call(group_arn, &pending),
                )
                .await;
                let err = match result {
                    Ok(()) => {
                        removal.removed.append(&mut pending);
                        break;
                    }
                    Err(err) => err,
                };
                // The call fails whole when one endpoint is no longer in the group: find which
                // ones are still there and remove only those.
                if !(err.has_code("EndpointNotFoundException")
                    || err.has_code("InvalidArgumentException"))
                {
                    return Err(err);
                }
                let present: BTreeSet<String> = self
                    .describe_group(group_arn)
                    .await?
                    .endpoints
                    .into_iter()
                    .map(|e| e.id)
                    .collect();
                let (still, gone): (Vec<String>, Vec<String>) =
                    pending.iter().cloned().partition(|id| present.contains(id));
                if gone.is_empty() {
                    return Err(err);
                }
                removal.already_gone.extend(gone);
                if still.is_empty() {
                    break;
                }
                pending = still;
            }
        }
        Ok(removal)
    }

    async fn remove_call(&self, group_arn: &str, ids: &[String]) -> Result<(), AwsError> {
        let identifiers = ids
            .iter()
            .map(|id| EndpointIdentifier::builder().endpoint_id(id).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError {
                operation: "RemoveEndpoints",
                code: None,
                message: e.to_string(),
                retryable: false,
            })?;
        self.client
            .remove_endpoints()
            .endpoint_group_arn(group_arn)
            .set_endpoint_identifiers(Some(identifiers))
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsError::from_sdk("RemoveEndpoints", e))
    }
}

fn group_state(arn: &str, region: Option<&str>, endpoints: &[EndpointDescription]) -> GroupState {
    GroupState {
        arn: arn.to_owned(),
        region: region.unwrap_or_default().to_owned(),
        endpoints: endpoints
            .iter()
            .filter_map(|e| {
                Some(EndpointState {
                    id: e.endpoint_id()?.to_owned(),
                    weight: e.weight(),
                    health: Health::from_sdk(e.health_state()),
                })
            })
            .collect(),
    }
}

/// Puts groups and sites together.
pub fn assemble(
    accelerator_arn: String,
    groups: Vec<GroupState>,
    sites: &BTreeMap<String, Option<SiteName>>,
) -> Topology {
    Topology {
        accelerator_arn,
        groups: groups
            .into_iter()
            .map(|g| EndpointGroup {
                arn: g.arn,
                region: g.region,
                endpoints: g
                    .endpoints
                    .into_iter()
                    .map(|e| Endpoint {
                        site: sites.get(&e.id).cloned().flatten(),
                        id: e.id,
                        weight: e.weight,
                        health: e.health,
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap()
    }

    fn state(arn: &str, ids: &[(&str, Health)]) -> GroupState {
        GroupState {
            arn: arn.to_owned(),
            region: "eu-west-1".to_owned(),
            endpoints: ids
                .iter()
                .map(|(id, health)| EndpointState {
                    id: (*id).to_owned(),
                    weight: Some(128),
                    health: *health,
                })
                .collect(),
        }
    }

    fn cached() -> Topology {
        let sites = BTreeMap::from([
            ("lb-a".to_owned(), Some(site("site-a"))),
            ("lb-b".to_owned(), Some(site("site-b"))),
        ]);
        assemble(
            "acc".to_owned(),
            vec![state(
                "g1",
                &[("lb-a", Health::Healthy), ("lb-b", Health::Healthy)],
            )],
            &sites,
        )
    }

    #[test]
    fn refresh_keeps_sites_and_takes_current_health() {
        let fresh = cached()
            .refreshed(vec![state(
                "g1",
                &[("lb-a", Health::Healthy), ("lb-b", Health::Unhealthy)],
            )])
            .unwrap();
        let b = &fresh.groups[0].endpoints[1];
        assert_eq!(b.site, Some(site("site-b")));
        assert_eq!(b.health, Health::Unhealthy);
        let gone = cached()
            .refreshed(vec![state("g1", &[("lb-a", Health::Healthy)])])
            .unwrap();
        assert_eq!(gone.groups[0].endpoints.len(), 1);
    }

    #[test]
    fn refresh_with_an_endpoint_unknown_to_the_cache_is_stale() {
        assert_eq!(
            cached().refreshed(vec![state("g1", &[("lb-c", Health::Healthy)])]),
            Err(Stale::UnknownEndpoint("lb-c".to_owned()))
        );
        assert_eq!(
            cached().refreshed(vec![state("g2", &[])]),
            Err(Stale::UnknownGroup("g2".to_owned()))
        );
    }

    #[test]
    fn untagged_endpoints_have_no_site() {
        let sites = BTreeMap::from([("lb-a".to_owned(), Some(site("site-a")))]);
        let topology = assemble(
            "acc".to_owned(),
            vec![state(
                "g1",
                &[("lb-a", Health::Healthy), ("i-123", Health::Healthy)],
            )],
            &sites,
        );
        assert_eq!(topology.groups[0].endpoints[1].site, None);
    }
}
