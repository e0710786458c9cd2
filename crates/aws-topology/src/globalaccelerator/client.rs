//! The Global Accelerator API and the ELBv2 tags behind [`GlobalAccelerator`].

use std::collections::BTreeMap;
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_globalaccelerator::Client;
use aws_sdk_globalaccelerator::types::{
    EndpointConfiguration, EndpointDescription, EndpointIdentifier, HealthState,
};
use common::site::{AcceleratorDns, SiteName};

use super::*;
use crate::elbv2::SiteTags;
use crate::retry::{self, AwsError, Backoff};

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

/// Global Accelerator (its control plane lives in `us-west-2`) plus the ELBv2 tags that say
/// which site an endpoint belongs to.
pub struct GlobalAccelerator {
    client: Client,
    tags: SiteTags,
    /// Endpoints whose site is configured: no ELBv2 tag read for them.
    known_sites: BTreeMap<String, SiteName>,
    backoff: Backoff,
}

impl GlobalAccelerator {
    /// `config`'s region must be the Global Accelerator API's (see `ACCELERATOR_REGION`); ELBv2
    /// calls use the region of each load balancer's ARN.
    pub fn new(config: &SdkConfig) -> GlobalAccelerator {
        GlobalAccelerator {
            client: Client::new(config),
            tags: SiteTags::new(config),
            known_sites: BTreeMap::new(),
            backoff: Backoff::default(),
        }
    }

    /// Endpoint id → site, known from configuration: the topology takes these sites as they
    /// are and reads ELBv2 tags only for the other endpoints (none, when every endpoint is
    /// listed: a cold start saves the tag read, on another region's API).
    pub fn with_known_sites(mut self, sites: BTreeMap<String, SiteName>) -> GlobalAccelerator {
        self.known_sites = sites;
        self
    }

    /// Reads the load balancers' tags with `config` instead of the accelerator's: for a tool
    /// given one endpoint for Global Accelerator and another for the other services (an
    /// emulator, or a proxy), where the per-service environment variables do not apply.
    pub fn with_elbv2_config(mut self, config: &SdkConfig) -> GlobalAccelerator {
        self.tags = SiteTags::new(config);
        self
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
    /// Every listener's groups are read at once.
    pub async fn topology(&self, dns: &AcceleratorDns) -> Result<Option<Topology>, AwsError> {
        let Some(accelerator_arn) = self.find_accelerator(dns).await? else {
            return Ok(None);
        };
        let listeners = self.listeners(&accelerator_arn).await?;
        let groups = self.groups_of_listeners(&listeners).await?;
        let sites = self.sites_of(&groups, &BTreeMap::new()).await?;
        Ok(Some(assemble(accelerator_arn, listeners, groups, &sites)))
    }

    /// The accelerator's topology as it is now, starting from what an earlier read found
    /// (see [`Known`]): the listeners and the known listeners' groups are listed at once (one
    /// round trip in sequence); a new listener's groups, or the site of an endpoint not seen
    /// before, cost one more. Without `known`, or when the accelerator is gone, a full read.
    pub async fn topology_from(
        &self,
        dns: &AcceleratorDns,
        known: Option<&Known>,
    ) -> Result<Option<Topology>, AwsError> {
        let Some(known) = known else {
            return self.topology(dns).await;
        };
        let (listeners, known_groups) = tokio::join!(
            self.listeners(&known.accelerator_arn),
            common::join::join_all(known.listeners.iter().map(|l| self.groups_of(l)))
        );
        let listeners = match listeners {
            Ok(listeners) => listeners,
            Err(err) if err.has_code("AcceleratorNotFoundException") => {
                return self.topology(dns).await;
            }
            Err(err) => return Err(err),
        };
        let mut groups = Vec::new();
        for (listener, read) in known.listeners.iter().zip(known_groups) {
            match read {
                Ok(found) if listeners.contains(listener) => groups.extend(found),
                // Deleted since: the listener list above no longer has it.
                Ok(_) => {}
                Err(err)
                    if err.has_code("ListenerNotFoundException")
                        && !listeners.contains(listener) => {}
                Err(err) => return Err(err),
            }
        }
        let added: Vec<String> = listeners
            .iter()
            .filter(|l| !known.listeners.contains(l))
            .cloned()
            .collect();
        if !added.is_empty() {
            groups.extend(self.groups_of_listeners(&added).await?);
        }
        let sites = self.sites_of(&groups, &known.sites).await?;
        Ok(Some(assemble(
            known.accelerator_arn.clone(),
            listeners,
            groups,
            &sites,
        )))
    }

    /// Every listener of the accelerator, over every page.
    async fn listeners(&self, accelerator_arn: &str) -> Result<Vec<String>, AwsError> {
        let mut listeners = Vec::new();
        let mut pages = self
            .client
            .list_listeners()
            .accelerator_arn(accelerator_arn)
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
        Ok(listeners)
    }

    /// Every endpoint group of `listener`, with its endpoints and their health, over every page.
    async fn groups_of(&self, listener: &str) -> Result<Vec<GroupState>, AwsError> {
        let mut groups = Vec::new();
        let mut pages = self
            .client
            .list_endpoint_groups()
            .listener_arn(listener)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListEndpointGroups", e))?;
            groups.extend(page.endpoint_groups().iter().filter_map(|g| {
                Some(group_state(
                    g.endpoint_group_arn()?,
                    g.endpoint_group_region(),
                    g.traffic_dial_percentage(),
                    g.endpoint_descriptions(),
                ))
            }));
        }
        Ok(groups)
    }

    /// The groups of every listener, the listeners read at once.
    async fn groups_of_listeners(&self, listeners: &[String]) -> Result<Vec<GroupState>, AwsError> {
        let mut groups = Vec::new();
        for read in common::join::join_all(listeners.iter().map(|l| self.groups_of(l))).await {
            groups.extend(read?);
        }
        Ok(groups)
    }

    /// The site of every endpoint of `groups`: from configuration, from `known`, else from the
    /// load balancers' ELBv2 tags (one read for all the others).
    async fn sites_of(
        &self,
        groups: &[GroupState],
        known: &BTreeMap<String, Option<SiteName>>,
    ) -> Result<BTreeMap<String, Option<SiteName>>, AwsError> {
        let unknown: Vec<String> = groups
            .iter()
            .flat_map(|g| g.endpoints.iter().map(|e| e.id.clone()))
            .filter(|id| !self.known_sites.contains_key(id) && !known.contains_key(id))
            .collect();
        let mut sites = if unknown.is_empty() {
            BTreeMap::new()
        } else {
            self.tags.sites(&unknown).await?
        };
        sites.extend(known.iter().map(|(id, site)| (id.clone(), site.clone())));
        sites.extend(
            self.known_sites
                .iter()
                .map(|(id, site)| (id.clone(), Some(site.clone()))),
        );
        Ok(sites)
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
            group.traffic_dial_percentage(),
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

    /// Adds `endpoints` to the group with `AddEndpoints`, at most [`ENDPOINTS_PER_ADD`] per
    /// call, each call retried within `deadline` (`TransactionInProgressException`, throttling).
    /// An endpoint already in the group takes the given weight: adding is idempotent.
    pub async fn add_endpoints(
        &self,
        group_arn: &str,
        endpoints: &[EndpointToAdd],
        deadline: Instant,
    ) -> Result<(), AwsError> {
        for chunk in endpoints.chunks(ENDPOINTS_PER_ADD) {
            retry::retry(
                "AddEndpoints",
                &self.backoff,
                deadline,
                AwsError::retry,
                || self.add_call(group_arn, chunk),
            )
            .await?;
        }
        Ok(())
    }

    /// Sets the group's traffic dial with `UpdateEndpointGroup`, retried within `deadline`.
    /// Only the dial is sent: Global Accelerator leaves the settings a request omits as they
    /// are, endpoints included.
    pub async fn set_traffic_dial(
        &self,
        group_arn: &str,
        dial: TrafficDial,
        deadline: Instant,
    ) -> Result<(), AwsError> {
        retry::retry(
            "UpdateEndpointGroup",
            &self.backoff,
            deadline,
            AwsError::retry,
            || async {
                self.client
                    .update_endpoint_group()
                    .endpoint_group_arn(group_arn)
                    .traffic_dial_percentage(dial.percentage())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| AwsError::from_sdk("UpdateEndpointGroup", e))
            },
        )
        .await
    }

    async fn add_call(&self, group_arn: &str, endpoints: &[EndpointToAdd]) -> Result<(), AwsError> {
        let configurations = endpoints
            .iter()
            .map(|e| {
                EndpointConfiguration::builder()
                    .endpoint_id(&e.id)
                    .weight(e.weight)
                    .client_ip_preservation_enabled(e.client_ip_preservation)
                    .build()
            })
            .collect();
        self.client
            .add_endpoints()
            .endpoint_group_arn(group_arn)
            .set_endpoint_configurations(Some(configurations))
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsError::from_sdk("AddEndpoints", e))
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

fn group_state(
    arn: &str,
    region: Option<&str>,
    traffic_dial: Option<f32>,
    endpoints: &[EndpointDescription],
) -> GroupState {
    GroupState {
        arn: arn.to_owned(),
        listener_arn: listener_of(arn).to_owned(),
        region: region.unwrap_or_default().to_owned(),
        traffic_dial: TrafficDial::from_percentage(traffic_dial),
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
