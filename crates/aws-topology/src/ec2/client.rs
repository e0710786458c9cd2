//! [`Vpc`] over the EC2 API.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;

use super::*;
use crate::retry::SdkFailure;

impl Vpc for Client {
    async fn route_tables(&self, vpc: &VpcId) -> Result<Vec<RouteTable>, Ec2Error> {
        // Filtered by VPC only and matched in code: the `route.network-interface-id` filter would
        // miss routes that name the instance instead, and moto does not implement it.
        let mut pages = self
            .describe_route_tables()
            .filters(
                Filter::builder()
                    .name("vpc-id")
                    .values(vpc.as_str())
                    .build(),
            )
            .into_paginator()
            .send();
        let mut tables = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| classify("DescribeRouteTables", &err))?;
            for table in page.route_tables() {
                let Some(id) = table.route_table_id().and_then(|id| id.parse().ok()) else {
                    continue;
                };
                tables.push(RouteTable {
                    id,
                    routes: table.routes().iter().map(route_from_sdk).collect(),
                });
            }
        }
        Ok(tables)
    }

    async fn eni_owner(&self, eni: &EniId) -> Result<Option<InstanceId>, Ec2Error> {
        let output = self
            .describe_network_interfaces()
            .network_interface_ids(eni.as_str())
            .send()
            .await
            .map_err(|err| match err.code() {
                Some("InvalidNetworkInterfaceID.NotFound") => {
                    Ec2Error::NetworkInterfaceNotFound(eni.clone())
                }
                _ => classify("DescribeNetworkInterfaces", &err),
            })?;
        let Some(interface) = output.network_interfaces().first() else {
            return Err(Ec2Error::NetworkInterfaceNotFound(eni.clone()));
        };
        Ok(interface
            .attachment()
            .and_then(|attachment| attachment.instance_id())
            .and_then(|id| id.parse().ok()))
    }

    async fn describe_instance(
        &self,
        instance: &InstanceId,
    ) -> Result<Option<DescribedInstance>, Ec2Error> {
        let output = match self
            .describe_instances()
            .instance_ids(instance.as_str())
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) if err.code() == Some("InvalidInstanceID.NotFound") => return Ok(None),
            Err(err) => return Err(classify("DescribeInstances", &err)),
        };
        let Some(found) = output
            .reservations()
            .iter()
            .flat_map(|reservation| reservation.instances())
            .find(|found| found.instance_id() == Some(instance.as_str()))
        else {
            return Ok(None);
        };
        let Some(state) = found
            .state()
            .and_then(|state| state.name())
            .and_then(|name| name.as_str().parse().ok())
        else {
            return Ok(None);
        };
        Ok(Some(DescribedInstance {
            state,
            launch_time: found
                .launch_time()
                .and_then(|time| std::time::SystemTime::try_from(*time).ok()),
        }))
    }

    async fn replace_route(&self, change: &RouteMove) -> Result<(), Ec2Error> {
        let request = self
            .replace_route()
            .route_table_id(change.route_table_id.as_str())
            .network_interface_id(change.to.as_str());
        let request = match &change.destination {
            Destination::Ipv4(cidr) => request.destination_cidr_block(cidr),
            Destination::Ipv6(cidr) => request.destination_ipv6_cidr_block(cidr),
            Destination::PrefixList(id) => request.destination_prefix_list_id(id),
        };
        request
            .send()
            .await
            .map_err(|err| classify("ReplaceRoute", &err))?;
        Ok(())
    }
}

fn route_from_sdk(route: &aws_sdk_ec2::types::Route) -> Route {
    use aws_sdk_ec2::types::{RouteOrigin as SdkOrigin, RouteState};

    let destination = if let Some(cidr) = route.destination_cidr_block() {
        Some(Destination::Ipv4(cidr.to_owned()))
    } else if let Some(cidr) = route.destination_ipv6_cidr_block() {
        Some(Destination::Ipv6(cidr.to_owned()))
    } else {
        route
            .destination_prefix_list_id()
            .map(|id| Destination::PrefixList(id.to_owned()))
    };
    let origin = match route.origin() {
        Some(SdkOrigin::CreateRouteTable) => RouteOrigin::CreateRouteTable,
        Some(SdkOrigin::EnableVgwRoutePropagation | SdkOrigin::Advertisement) => {
            RouteOrigin::Propagated
        }
        // Unknown or absent origins are treated as static: a route that names an ENI was put
        // there by someone who can also replace it.
        _ => RouteOrigin::CreateRoute,
    };
    Route {
        destination,
        network_interface_id: route.network_interface_id().map(str::to_owned),
        instance_id: route.instance_id().map(str::to_owned),
        origin,
        blackhole: matches!(route.state(), Some(RouteState::Blackhole)),
    }
}

fn classify<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> Ec2Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match crate::retry::classify_sdk(err) {
        // Timeouts, connection failures, unreadable responses are transient: `ReplaceRoute` to
        // the same ENI is idempotent, so trying again is safe.
        SdkFailure::Transient(message) => Ec2Error::Transient { operation, message },
        SdkFailure::Refused { code, message } => Ec2Error::Refused {
            operation,
            code,
            message,
        },
    }
}
