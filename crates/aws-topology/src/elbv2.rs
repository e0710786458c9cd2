//! Which site a load balancer belongs to: its ELBv2 tag `site`.
//!
//! Tags are read with `DescribeTags` in batches of at most 20 ARNs (the API's limit), with an
//! ELBv2 client in the load balancer's own region (taken from its ARN). An endpoint that is not
//! an ELB ARN, or has no valid `site` tag, has an unknown site: never guessed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_config::{Region, SdkConfig};
use aws_sdk_elasticloadbalancingv2::Client;
use common::site::SiteName;

/// The tag key holding the site name (as the HA guide tags its NLBs).
pub const SITE_TAG: &str = "site";
/// `DescribeTags` takes at most this many ARNs.
pub const TAGS_PER_CALL: usize = 20;

pub use crate::retry::AwsError;

/// Splits an ELB ARN (`arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/...`)
/// into its region; `None` for anything else (EC2 instance ids, Elastic IP allocations...).
pub fn elb_region(endpoint_id: &str) -> Option<&str> {
    let mut fields = endpoint_id.splitn(6, ':');
    let (arn, _partition, service, region) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    (arn == "arn" && service == "elasticloadbalancing" && !region.is_empty()).then_some(region)
}

/// Reads `site` tags, with one ELBv2 client per region, built on first use.
pub struct SiteTags {
    base: SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
}

impl SiteTags {
    pub fn new(base: &SdkConfig) -> SiteTags {
        SiteTags {
            base: base.clone(),
            clients: Mutex::default(),
        }
    }

    fn client(&self, region: &str) -> Client {
        let build = || {
            let config = aws_sdk_elasticloadbalancingv2::config::Builder::from(&self.base)
                .region(Region::new(region.to_owned()))
                .build();
            Client::from_conf(config)
        };
        match self.clients.lock() {
            Ok(mut clients) => clients
                .entry(region.to_owned())
                .or_insert_with(build)
                .clone(),
            Err(_) => build(),
        }
    }

    /// The site of each endpoint id (`None`: not an ELB, no `site` tag, or an invalid one).
    pub async fn sites(
        &self,
        endpoint_ids: &[String],
    ) -> Result<BTreeMap<String, Option<SiteName>>, AwsError> {
        let mut sites: BTreeMap<String, Option<SiteName>> =
            endpoint_ids.iter().map(|id| (id.clone(), None)).collect();
        for (region, batch) in tag_batches(endpoint_ids) {
            let client = self.client(region);
            for (arn, site) in self.describe_batch(&client, &batch).await? {
                sites.insert(arn, site);
            }
        }
        Ok(sites)
    }

    async fn describe_batch(
        &self,
        client: &Client,
        arns: &[&str],
    ) -> Result<Vec<(String, Option<SiteName>)>, AwsError> {
        match describe_tags(client, arns).await {
            Err(err) if err.has_code("LoadBalancerNotFound") && arns.len() > 1 => {
                // One load balancer deleted behind the accelerator must not hide the others'
                // sites: read them one by one, the deleted one has an unknown site.
                let mut found = Vec::new();
                for arn in arns {
                    match describe_tags(client, &[arn]).await {
                        Ok(sites) => found.extend(sites),
                        Err(err) if err.has_code("LoadBalancerNotFound") => {
                            tracing::warn!(endpoint = *arn, "load_balancer_not_found");
                        }
                        Err(err) => return Err(err),
                    }
                }
                Ok(found)
            }
            Err(err) if err.has_code("LoadBalancerNotFound") => {
                tracing::warn!(
                    endpoint = arns.first().copied().unwrap_or_default(),
                    "load_balancer_not_found"
                );
                Ok(Vec::new())
            }
            other => other,
        }
    }
}

async fn describe_tags(
    client: &Client,
    arns: &[&str],
) -> Result<Vec<(String, Option<SiteName>)>, AwsError> {
    let output = client
        .describe_tags()
        .set_resource_arns(Some(arns.iter().map(|a| (*a).to_owned()).collect()))
        .send()
        .await
        .map_err(|err| AwsError::from_sdk("DescribeTags", err))?;
    Ok(output
        .tag_descriptions()
        .iter()
        .filter_map(|description| {
            let arn = description.resource_arn()?;
            let value = description
                .tags()
                .iter()
                .find(|tag| tag.key() == Some(SITE_TAG))
                .and_then(|tag| tag.value());
            Some((arn.to_owned(), parse_site_tag(arn, value)))
        })
        .collect())
}

/// The `DescribeTags` calls needed for `endpoint_ids`: ELB ARNs grouped by region, each call
/// with at most [`TAGS_PER_CALL`] distinct ARNs.
pub fn tag_batches(endpoint_ids: &[String]) -> Vec<(&str, Vec<&str>)> {
    let mut by_region: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for id in endpoint_ids {
        if let Some(region) = elb_region(id) {
            let arns = by_region.entry(region).or_default();
            if !arns.contains(&id.as_str()) {
                arns.push(id);
            }
        }
    }
    by_region
        .into_iter()
        .flat_map(|(region, arns)| {
            arns.chunks(TAGS_PER_CALL)
                .map(|batch| (region, batch.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn parse_site_tag(arn: &str, value: Option<&str>) -> Option<SiteName> {
    let value = value?;
    match SiteName::parse(value) {
        Ok(site) => Some(site),
        Err(reason) => {
            tracing::warn!(endpoint = arn, tag = SITE_TAG, %reason, "invalid_site_tag");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_elb_arns_have_a_region() {
        let table = [
            (
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/site-a/50dc6c495c0c9188",
                Some("eu-west-1"),
            ),
            (
                "arn:aws-cn:elasticloadbalancing:cn-north-1:123:loadbalancer/app/x/y",
                Some("cn-north-1"),
            ),
            ("i-0123456789abcdef0", None),
            ("eipalloc-0123456789abcdef0", None),
            ("arn:aws:ec2:eu-west-1:123:instance/i-1", None),
            (
                "arn:aws:elasticloadbalancing::123:loadbalancer/net/x/y",
                None,
            ),
            ("", None),
        ];
        for (id, region) in table {
            assert_eq!(elb_region(id), region, "{id}");
        }
    }

    #[test]
    fn invalid_site_tags_are_unknown_not_guessed() {
        assert_eq!(
            parse_site_tag("arn", Some("site-a")),
            Some(SiteName::parse("site-a").unwrap())
        );
        assert_eq!(parse_site_tag("arn", Some("")), None);
        assert_eq!(parse_site_tag("arn", Some("site a")), None);
        assert_eq!(parse_site_tag("arn", None), None);
    }

    #[test]
    fn seed_read_tags_one_endpoint_at_a_time_more_than_20_endpoints_are_batched() {
        let mut ids: Vec<String> = (0..45)
            .map(|i| format!("arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/net/lb{i}/x"))
            .collect();
        ids.extend(
            (0..3).map(|i| {
                format!("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/lb{i}/x")
            }),
        );
        ids.push("i-0123456789abcdef0".to_owned());
        ids.push(ids[0].clone());
        let batches = tag_batches(&ids);
        let sizes: Vec<(&str, usize)> = batches.iter().map(|(r, b)| (*r, b.len())).collect();
        assert_eq!(
            sizes,
            vec![
                ("eu-west-1", 20),
                ("eu-west-1", 20),
                ("eu-west-1", 5),
                ("us-east-1", 3)
            ]
        );
        let covered: std::collections::BTreeSet<&str> = batches
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect();
        assert_eq!(
            covered.len(),
            48,
            "every ELB endpoint is asked once, the instance id never"
        );
    }
}
