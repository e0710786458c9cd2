//! The shapes of accelerator the interleaving suite fences, one accelerator of each in every
//! lab world, all in front of the same two sites: the sandbox's seed (one listener, one group
//! with both sites) and the shapes production runs besides it. They are made through the
//! Global Accelerator API (and ELBv2 for the second load balancers), as an operator would, then
//! remembered as the emulator's seed so that every round starts from them.

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_globalaccelerator::types::{EndpointConfiguration, IpAddressType, PortRange, Protocol};
use aws_topology::globalaccelerator::{API_REGION, listener_of};
use sandbox::world::{REGION, SITES, SandboxInfo, sdk_config};
use serde::Serialize;

const A: &str = SITES[0];
const B: &str = SITES[1];
/// The region of site-b's endpoint group when each site has a group of its own.
pub const SECOND_REGION: &str = "eu-central-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// The sandbox's seed: a TCP 443 listener with one endpoint group holding both sites'
    /// load balancers (weight 128).
    OneGroup,
    /// TCP 443 and TCP 80, each with one group holding both sites: the fence changes both.
    TwoListeners,
    /// One listener, one group per region: site-a's load balancer alone in an eu-west-1 group,
    /// site-b's alone in an eu-central-1 one. Removing the loser would empty its group, so the
    /// fence closes that group's traffic dial.
    GroupPerRegion,
    /// One group in which each site has a second load balancer: site-a's two at 128 and 64,
    /// site-b's at 128 and 0 (a standby that takes no traffic).
    Weighted,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::OneGroup,
        Shape::TwoListeners,
        Shape::GroupPerRegion,
        Shape::Weighted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::OneGroup => "one group",
            Shape::TwoListeners => "two listeners (443, 80)",
            Shape::GroupPerRegion => "one group per region",
            Shape::Weighted => "weights (a second load balancer per site, one at 0)",
        }
    }
}

/// One accelerator of the lab's world.
#[derive(Debug, Clone)]
pub struct Shaped {
    pub shape: Shape,
    pub dns: String,
    /// Site → the load balancers it has in this accelerator.
    pub load_balancers: BTreeMap<&'static str, Vec<String>>,
    /// The endpoint groups in the order a fence changes them (by listener ARN, then as
    /// listed).
    pub groups: Vec<String>,
}

impl Shaped {
    /// Every load balancer of the accelerator and its site.
    pub fn sites_by_load_balancer(&self) -> BTreeMap<String, &'static str> {
        self.load_balancers
            .iter()
            .flat_map(|(site, ids)| ids.iter().map(|id| (id.clone(), *site)))
            .collect()
    }
}

/// Makes an accelerator of every shape but the seed's (which is the first returned) in the
/// world's Global Accelerator emulator, and the second load balancers the weighted shape needs
/// in its moto (tagged with their site, as deploy's guide tags them).
pub async fn make_all(info: &SandboxInfo) -> anyhow::Result<Vec<Shaped>> {
    let ga = aws_sdk_globalaccelerator::Client::new(
        &sdk_config(&info.globalaccelerator_endpoint_url, API_REGION).await,
    );
    let regional = sdk_config(&info.moto_url, REGION).await;
    let lb = |site: &str| -> anyhow::Result<String> {
        Ok(info
            .sites
            .get(site)
            .with_context(|| format!("the sandbox has no {site}"))?
            .endpoint_id
            .clone())
    };
    let (lb_a, lb_b) = (lb(A)?, lb(B)?);
    let mut shaped = vec![Shaped {
        shape: Shape::OneGroup,
        dns: info.accelerator_dns.clone(),
        load_balancers: [(A, vec![lb_a.clone()]), (B, vec![lb_b.clone()])].into(),
        groups: info.endpoint_group_arns.clone(),
    }];
    let maker = Maker { ga: &ga };

    let (arn, dns) = maker.accelerator("keycloak-two-listeners").await?;
    let both = [(lb_a.as_str(), 128), (lb_b.as_str(), 128)];
    let mut groups = Vec::new();
    for port in [443, 80] {
        let listener = maker.listener(&arn, port).await?;
        groups.push(maker.group(&listener, REGION, &both).await?);
    }
    shaped.push(Shaped {
        shape: Shape::TwoListeners,
        dns,
        load_balancers: [(A, vec![lb_a.clone()]), (B, vec![lb_b.clone()])].into(),
        groups: in_fence_order(groups),
    });

    let (arn, dns) = maker.accelerator("keycloak-per-region").await?;
    let listener = maker.listener(&arn, 443).await?;
    let groups = vec![
        maker.group(&listener, REGION, &[(&lb_a, 128)]).await?,
        maker
            .group(&listener, SECOND_REGION, &[(&lb_b, 128)])
            .await?,
    ];
    shaped.push(Shaped {
        shape: Shape::GroupPerRegion,
        dns,
        load_balancers: [(A, vec![lb_a.clone()]), (B, vec![lb_b.clone()])].into(),
        groups: in_fence_order(groups),
    });

    let (arn, dns) = maker.accelerator("keycloak-weighted").await?;
    let lb_a2 = second_load_balancer(&regional, info, A, &dns).await?;
    let lb_b2 = second_load_balancer(&regional, info, B, &dns).await?;
    let listener = maker.listener(&arn, 443).await?;
    let group = maker
        .group(
            &listener,
            REGION,
            &[(&lb_a, 128), (&lb_a2, 64), (&lb_b, 128), (&lb_b2, 0)],
        )
        .await?;
    shaped.push(Shaped {
        shape: Shape::Weighted,
        dns,
        load_balancers: [(A, vec![lb_a, lb_a2]), (B, vec![lb_b, lb_b2])].into(),
        groups: vec![group],
    });
    Ok(shaped)
}

/// A fence handles listeners in the order of their ARNs, and a listener's groups as listed
/// (in the order they were made).
fn in_fence_order(groups: Vec<String>) -> Vec<String> {
    let mut indexed: Vec<(usize, String)> = groups.into_iter().enumerate().collect();
    indexed.sort_by(|(i, a), (j, b)| listener_of(a).cmp(listener_of(b)).then(i.cmp(j)));
    indexed.into_iter().map(|(_, arn)| arn).collect()
}

struct Maker<'a> {
    ga: &'a aws_sdk_globalaccelerator::Client,
}

impl Maker<'_> {
    /// A dual-stack accelerator: its ARN and DNS name.
    async fn accelerator(&self, name: &str) -> anyhow::Result<(String, String)> {
        let created = self
            .ga
            .create_accelerator()
            .name(name)
            .ip_address_type(IpAddressType::DualStack)
            .enabled(true)
            .send()
            .await
            .with_context(|| format!("CreateAccelerator {name}"))?;
        let accelerator = created
            .accelerator()
            .context("CreateAccelerator returned no accelerator")?;
        Ok((
            accelerator
                .accelerator_arn()
                .context("no accelerator ARN")?
                .to_owned(),
            accelerator.dns_name().context("no DNS name")?.to_owned(),
        ))
    }

    async fn listener(&self, accelerator_arn: &str, port: i32) -> anyhow::Result<String> {
        self.ga
            .create_listener()
            .accelerator_arn(accelerator_arn)
            .protocol(Protocol::Tcp)
            .port_ranges(PortRange::builder().from_port(port).to_port(port).build())
            .send()
            .await
            .with_context(|| format!("CreateListener {port}"))?
            .listener()
            .and_then(|l| l.listener_arn())
            .map(str::to_owned)
            .context("CreateListener returned no ARN")
    }

    /// A group holding `(load balancer, weight)`s, client IP preservation off (NLBs).
    async fn group(
        &self,
        listener_arn: &str,
        region: &str,
        endpoints: &[(&str, i32)],
    ) -> anyhow::Result<String> {
        let configurations = endpoints
            .iter()
            .map(|(id, weight)| {
                EndpointConfiguration::builder()
                    .endpoint_id(*id)
                    .weight(*weight)
                    .client_ip_preservation_enabled(false)
                    .build()
            })
            .collect();
        self.ga
            .create_endpoint_group()
            .listener_arn(listener_arn)
            .endpoint_group_region(region)
            .set_endpoint_configurations(Some(configurations))
            .send()
            .await
            .with_context(|| format!("CreateEndpointGroup in {region}"))?
            .endpoint_group()
            .and_then(|g| g.endpoint_group_arn())
            .map(str::to_owned)
            .context("CreateEndpointGroup returned no ARN")
    }
}

/// A second network load balancer of `site` in the sandbox's VPC, tagged as the guide tags a
/// site's load balancers (`site`, `accelerator`, `namespace`): the fence learns its site from
/// the tag, as it is not in `SITE_LOAD_BALANCERS`.
async fn second_load_balancer(
    config: &aws_config::SdkConfig,
    info: &SandboxInfo,
    site: &str,
    accelerator_dns: &str,
) -> anyhow::Result<String> {
    network_load_balancer(
        config,
        info,
        &format!("keycloak-{site}-2"),
        &[
            ("site", site),
            ("accelerator", accelerator_dns),
            ("namespace", "default"),
        ],
    )
    .await
}

/// A network load balancer named `name` in the sandbox's VPC with `tags`; its ARN.
pub(crate) async fn network_load_balancer(
    config: &aws_config::SdkConfig,
    info: &SandboxInfo,
    name: &str,
    tags: &[(&str, &str)],
) -> anyhow::Result<String> {
    use aws_sdk_elasticloadbalancingv2::types::{
        LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Tag,
    };
    let ec2 = aws_sdk_ec2::Client::new(config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(config);
    let subnets: Vec<String> = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&info.vpc.vpc_id)
                .build(),
        )
        .send()
        .await
        .context("DescribeSubnets")?
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id().map(str::to_owned))
        .collect();
    let arn = elb
        .create_load_balancer()
        .name(name)
        .r#type(LoadBalancerTypeEnum::Network)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnets))
        .send()
        .await
        .context("CreateLoadBalancer")?
        .load_balancers()
        .first()
        .and_then(|lb| lb.load_balancer_arn())
        .map(str::to_owned)
        .context("CreateLoadBalancer returned no ARN")?;
    if !tags.is_empty() {
        let tags = tags
            .iter()
            .map(|(key, value)| Tag::builder().key(*key).value(*value).build())
            .collect();
        elb.add_tags()
            .resource_arns(&arn)
            .set_tags(Some(tags))
            .send()
            .await
            .context("AddTags")?;
    }
    Ok(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_go_in_the_order_a_fence_takes_them() {
        let l1 = "arn:aws:globalaccelerator::1:accelerator/x/listener/bbb";
        let l2 = "arn:aws:globalaccelerator::1:accelerator/x/listener/aaa";
        let groups = vec![
            format!("{l1}/endpoint-group/1"),
            format!("{l2}/endpoint-group/2"),
            format!("{l2}/endpoint-group/0"),
        ];
        assert_eq!(
            in_fence_order(groups),
            vec![
                format!("{l2}/endpoint-group/2"),
                format!("{l2}/endpoint-group/0"),
                format!("{l1}/endpoint-group/1"),
            ]
        );
    }
}
