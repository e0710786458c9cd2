//! The emulated account: accelerators, listeners, endpoint groups and their endpoints, with the
//! validation and quotas of the real service. Inputs are the AWS request shapes; outputs are
//! the AWS response shapes (PascalCase members), so `wire` only moves JSON in and out.
//!
//! Every operation runs under the emulator's one lock, so each is atomic, as the real control
//! plane's transactions are.

use super::error::GaError;
use super::{GaSeed, SeededAccelerator};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ARN_PREFIX: &str = "arn:aws:globalaccelerator::123456789012:";
// AWS's default quotas, so that a client meets LimitExceededException where AWS would send it.
const LISTENERS_PER_ACCELERATOR: usize = 10;
const ENDPOINTS_PER_GROUP: usize = 10;
const ENDPOINTS_PER_CALL: usize = 10;
const DEFAULT_PAGE_SIZE: usize = 10;
const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_WEIGHT: u8 = 128;
/// How long an endpoint added through the API reports `INITIAL` before its first health checks
/// pass, unless a test set its health explicitly.
pub(super) const DEFAULT_INITIAL_HEALTH_CHECK: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum IpAddressType {
    Ipv4,
    DualStack,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Protocol {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum ClientAffinity {
    None,
    SourceIp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum HealthCheckProtocol {
    Tcp,
    Http,
    Https,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum HealthState {
    Initial,
    Healthy,
    Unhealthy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Tag {
    pub key: String,
    pub value: String,
}

/// Ports are read wider than `u16` so that an out-of-range port is the service's
/// `InvalidPortRangeException`, not a serialization error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PortRange {
    #[serde(default)]
    pub from_port: i64,
    #[serde(default)]
    pub to_port: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PortOverride {
    #[serde(default)]
    pub listener_port: i64,
    #[serde(default)]
    pub endpoint_port: i64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct IpSet {
    ip_family: &'static str,
    ip_addresses: Vec<String>,
    ip_address_family: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Accelerator {
    #[serde(skip)]
    seq: u64,
    #[serde(skip)]
    pub tags: Vec<Tag>,
    pub accelerator_arn: String,
    pub name: String,
    pub ip_address_type: IpAddressType,
    pub enabled: bool,
    pub ip_sets: Vec<IpSet>,
    pub dns_name: String,
    pub status: &'static str,
    pub created_time: f64,
    pub last_modified_time: f64,
    /// AWS gives a dual-stack name only to dual-stack accelerators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dual_stack_dns_name: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Listener {
    #[serde(skip)]
    seq: u64,
    #[serde(skip)]
    pub accelerator_arn: String,
    pub listener_arn: String,
    pub port_ranges: Vec<PortRange>,
    pub protocol: Protocol,
    pub client_affinity: ClientAffinity,
}

#[derive(Clone, Debug)]
pub(super) struct EndpointGroup {
    seq: u64,
    pub listener_arn: String,
    pub arn: String,
    region: String,
    endpoints: Vec<Endpoint>,
    traffic_dial_percentage: f64,
    health_check_port: i64,
    health_check_protocol: HealthCheckProtocol,
    health_check_path: Option<String>,
    health_check_interval_seconds: i64,
    threshold_count: i64,
    port_overrides: Vec<PortOverride>,
}

#[derive(Clone, Debug)]
struct Endpoint {
    id: String,
    weight: u8,
    client_ip_preservation_enabled: bool,
    health: HealthState,
    added_at: Instant,
}

/// The health states tests impose on endpoints, by endpoint id, whichever group holds them.
#[derive(Clone, Debug)]
pub(super) struct Health {
    overrides: HashMap<String, HealthState>,
    initial_health_check: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            overrides: HashMap::new(),
            initial_health_check: DEFAULT_INITIAL_HEALTH_CHECK,
        }
    }
}

impl Health {
    pub fn set(&mut self, endpoint_id: String, state: HealthState) {
        self.overrides.insert(endpoint_id, state);
    }

    pub fn set_initial_health_check(&mut self, duration: Duration) {
        self.initial_health_check = duration;
    }

    pub fn overrides(&self) -> &HashMap<String, HealthState> {
        &self.overrides
    }

    fn reported(&self, endpoint: &Endpoint) -> HealthState {
        if let Some(state) = self.overrides.get(&endpoint.id) {
            return *state;
        }
        match endpoint.health {
            HealthState::Initial if endpoint.added_at.elapsed() >= self.initial_health_check => {
                HealthState::Healthy
            }
            state => state,
        }
    }
}

/// `EndpointDescription` as AWS returns it. `HealthReason` is absent for healthy endpoints: a
/// client (the seed's Python) sends descriptions back as configurations, and boto3 rejects
/// members a configuration does not have.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EndpointDescription<'a> {
    endpoint_id: &'a str,
    weight: u8,
    health_state: HealthState,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_reason: Option<&'static str>,
    #[serde(rename = "ClientIPPreservationEnabled")]
    client_ip_preservation_enabled: bool,
}

impl Endpoint {
    fn describe(&self, health: &Health) -> EndpointDescription<'_> {
        let health_state = health.reported(self);
        EndpointDescription {
            endpoint_id: &self.id,
            weight: self.weight,
            health_state,
            health_reason: match health_state {
                HealthState::Healthy => None,
                HealthState::Initial => Some("Initial health checking"),
                HealthState::Unhealthy => Some("Health checks failed"),
            },
            client_ip_preservation_enabled: self.client_ip_preservation_enabled,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EndpointGroupDescription<'a> {
    endpoint_group_arn: &'a str,
    endpoint_group_region: &'a str,
    endpoint_descriptions: Vec<EndpointDescription<'a>>,
    traffic_dial_percentage: f64,
    health_check_port: i64,
    health_check_protocol: HealthCheckProtocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check_path: Option<&'a str>,
    health_check_interval_seconds: i64,
    threshold_count: i64,
    port_overrides: &'a [PortOverride],
}

impl EndpointGroup {
    pub fn describe<'a>(&'a self, health: &Health) -> EndpointGroupDescription<'a> {
        EndpointGroupDescription {
            endpoint_group_arn: &self.arn,
            endpoint_group_region: &self.region,
            endpoint_descriptions: self.endpoints.iter().map(|e| e.describe(health)).collect(),
            traffic_dial_percentage: self.traffic_dial_percentage,
            health_check_port: self.health_check_port,
            health_check_protocol: self.health_check_protocol,
            health_check_path: self.health_check_path.as_deref(),
            health_check_interval_seconds: self.health_check_interval_seconds,
            threshold_count: self.threshold_count,
            port_overrides: &self.port_overrides,
        }
    }

    /// The descriptions of the named endpoints, in the order given.
    pub fn describe_endpoints<'a>(
        &'a self,
        ids: &[String],
        health: &Health,
    ) -> Vec<EndpointDescription<'a>> {
        ids.iter()
            .filter_map(|id| self.endpoints.iter().find(|e| &e.id == id))
            .map(|e| e.describe(health))
            .collect()
    }

    fn endpoint_mut(&mut self, id: &str) -> Option<&mut Endpoint> {
        self.endpoints.iter_mut().find(|e| e.id == id)
    }
}

// ---- Inputs: the AWS request shapes. Required members are `Option`s so that a missing one is
// ---- the service's InvalidArgumentException rather than a serialization error.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateAccelerator {
    pub name: Option<String>,
    pub ip_address_type: Option<IpAddressType>,
    pub ip_addresses: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub idempotency_token: Option<String>,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateAccelerator {
    pub accelerator_arn: Option<String>,
    pub name: Option<String>,
    pub ip_address_type: Option<IpAddressType>,
    pub ip_addresses: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateListener {
    pub accelerator_arn: Option<String>,
    pub port_ranges: Option<Vec<PortRange>>,
    pub protocol: Option<Protocol>,
    pub client_affinity: Option<ClientAffinity>,
    pub idempotency_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateListener {
    pub listener_arn: Option<String>,
    pub port_ranges: Option<Vec<PortRange>>,
    pub protocol: Option<Protocol>,
    pub client_affinity: Option<ClientAffinity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EndpointConfiguration {
    pub endpoint_id: Option<String>,
    pub weight: Option<i64>,
    #[serde(rename = "ClientIPPreservationEnabled")]
    pub client_ip_preservation_enabled: Option<bool>,
}

/// `ClientIPPreservationEnabled` does not change which endpoint is removed, so it is not read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EndpointIdentifier {
    pub endpoint_id: Option<String>,
}

/// The settings CreateEndpointGroup and UpdateEndpointGroup share.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EndpointGroupSettings {
    pub endpoint_configurations: Option<Vec<EndpointConfiguration>>,
    pub traffic_dial_percentage: Option<f64>,
    pub health_check_port: Option<i64>,
    pub health_check_protocol: Option<HealthCheckProtocol>,
    pub health_check_path: Option<String>,
    pub health_check_interval_seconds: Option<i64>,
    pub threshold_count: Option<i64>,
    pub port_overrides: Option<Vec<PortOverride>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateEndpointGroup {
    pub listener_arn: Option<String>,
    pub endpoint_group_region: Option<String>,
    pub idempotency_token: Option<String>,
    #[serde(flatten)]
    pub settings: EndpointGroupSettings,
}

/// `MaxResults` and `NextToken` of the three List operations.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PageRequest {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

pub(super) struct Page<'a, T> {
    pub items: Vec<&'a T>,
    pub next_token: Option<String>,
}

pub(super) fn required<T>(value: Option<T>, member: &str) -> Result<T, GaError> {
    value.ok_or_else(|| GaError::invalid_argument(format!("{member} is required")))
}

/// Everything the account holds. Cloned whole to remember the seeded topology.
#[derive(Clone, Debug, Default)]
pub(super) struct Topology {
    next_seq: u64,
    accelerators: Vec<Accelerator>,
    listeners: Vec<Listener>,
    endpoint_groups: Vec<EndpointGroup>,
    /// IdempotencyToken → ARN of what the first request with that token created.
    created_by_token: HashMap<String, String>,
}

impl Topology {
    /// The ARN of what an earlier request with this IdempotencyToken created: a retried create
    /// answers it instead of creating a twin.
    fn created_with(&self, token: &str) -> Option<String> {
        self.created_by_token.get(token).cloned()
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    // ---- Accelerators

    pub fn accelerators(&self) -> &[Accelerator] {
        &self.accelerators
    }

    pub fn accelerator(&self, arn: &str) -> Result<&Accelerator, GaError> {
        check_arn(arn, "AcceleratorArn")?;
        self.accelerators
            .iter()
            .find(|a| a.accelerator_arn == arn)
            .ok_or_else(|| GaError::accelerator_not_found(arn))
    }

    fn accelerator_mut(&mut self, arn: &str) -> Result<&mut Accelerator, GaError> {
        check_arn(arn, "AcceleratorArn")?;
        self.accelerators
            .iter_mut()
            .find(|a| a.accelerator_arn == arn)
            .ok_or_else(|| GaError::accelerator_not_found(arn))
    }

    pub fn create_accelerator(
        &mut self,
        input: CreateAccelerator,
    ) -> Result<&Accelerator, GaError> {
        let name = required(input.name, "Name")?;
        let token = required(input.idempotency_token, "IdempotencyToken")?;
        validate_accelerator_name(&name)?;
        let tags = input.tags.unwrap_or_default();
        validate_tags(&tags)?;
        let addresses = input.ip_addresses.unwrap_or_default();
        validate_ip_addresses(&addresses)?;
        if let Some(arn) = self.created_with(&token)
            && self.accelerators.iter().any(|a| a.accelerator_arn == arn)
        {
            return self.accelerator(&arn);
        }
        let ip_address_type = input.ip_address_type.unwrap_or(IpAddressType::Ipv4);
        let accelerator = self.new_accelerator(name, ip_address_type, &addresses, tags);
        accelerator.enabled = input.enabled.unwrap_or(true);
        let arn = accelerator.accelerator_arn.clone();
        self.created_by_token.insert(token, arn.clone());
        self.accelerator(&arn)
    }

    fn new_accelerator(
        &mut self,
        name: String,
        ip_address_type: IpAddressType,
        addresses: &[String],
        tags: Vec<Tag>,
    ) -> &mut Accelerator {
        let now = epoch_seconds();
        let seq = self.next_seq();
        self.accelerators.push(Accelerator {
            seq,
            tags,
            accelerator_arn: format!("{ARN_PREFIX}accelerator/{}", uuid()),
            name,
            ip_address_type,
            enabled: true,
            ip_sets: ip_sets(ip_address_type, addresses),
            dns_name: format!("{}.awsglobalaccelerator.com", hex(16)),
            status: "DEPLOYED",
            created_time: now,
            last_modified_time: now,
            dual_stack_dns_name: dual_stack_dns_name(ip_address_type),
        });
        let last = self.accelerators.len() - 1;
        &mut self.accelerators[last]
    }

    pub fn list_accelerators(&self, page: &PageRequest) -> Result<Page<'_, Accelerator>, GaError> {
        paginate(self.accelerators.iter(), "accelerators", page)
    }

    pub fn update_accelerator(
        &mut self,
        input: UpdateAccelerator,
    ) -> Result<&Accelerator, GaError> {
        let arn = required(input.accelerator_arn, "AcceleratorArn")?;
        if let Some(name) = &input.name {
            validate_accelerator_name(name)?;
        }
        if let Some(addresses) = &input.ip_addresses {
            validate_ip_addresses(addresses)?;
        }
        let accelerator = self.accelerator_mut(&arn)?;
        if let Some(name) = input.name {
            accelerator.name = name;
        }
        if let Some(enabled) = input.enabled {
            accelerator.enabled = enabled;
        }
        if let Some(ip_address_type) = input.ip_address_type
            && ip_address_type != accelerator.ip_address_type
        {
            accelerator.ip_address_type = ip_address_type;
            accelerator.ip_sets = ip_sets(ip_address_type, &input.ip_addresses.unwrap_or_default());
            accelerator.dual_stack_dns_name = dual_stack_dns_name(ip_address_type);
        }
        accelerator.last_modified_time = epoch_seconds();
        Ok(accelerator)
    }

    pub fn delete_accelerator(&mut self, arn: &str) -> Result<(), GaError> {
        if self.accelerator(arn)?.enabled {
            return Err(GaError::new(
                "AcceleratorNotDisabledException",
                "The accelerator must be disabled before it can be deleted",
            ));
        }
        if self.listeners.iter().any(|l| l.accelerator_arn == arn) {
            return Err(GaError::new(
                "AssociatedListenerFoundException",
                "The accelerator still has listeners; delete them first",
            ));
        }
        self.accelerators.retain(|a| a.accelerator_arn != arn);
        Ok(())
    }

    // ---- Tags (only accelerators carry tags in standard Global Accelerator)

    pub fn tag_resource(&mut self, arn: &str, tags: Vec<Tag>) -> Result<(), GaError> {
        validate_tags(&tags)?;
        let accelerator = self.accelerator_mut(arn)?;
        for tag in tags {
            match accelerator.tags.iter_mut().find(|t| t.key == tag.key) {
                Some(existing) => existing.value = tag.value,
                None => accelerator.tags.push(tag),
            }
        }
        Ok(())
    }

    pub fn untag_resource(&mut self, arn: &str, keys: &[String]) -> Result<(), GaError> {
        let accelerator = self.accelerator_mut(arn)?;
        accelerator.tags.retain(|t| !keys.contains(&t.key));
        Ok(())
    }

    // ---- Listeners

    pub fn listeners_of<'a, 'b>(
        &'a self,
        accelerator_arn: &'b str,
    ) -> impl Iterator<Item = &'a Listener> + use<'a, 'b> {
        self.listeners
            .iter()
            .filter(move |l| l.accelerator_arn == accelerator_arn)
    }

    pub fn listener(&self, arn: &str) -> Result<&Listener, GaError> {
        check_arn(arn, "ListenerArn")?;
        self.listeners
            .iter()
            .find(|l| l.listener_arn == arn)
            .ok_or_else(|| GaError::listener_not_found(arn))
    }

    pub fn create_listener(&mut self, input: CreateListener) -> Result<&Listener, GaError> {
        let accelerator_arn = required(input.accelerator_arn, "AcceleratorArn")?;
        let port_ranges = required(input.port_ranges, "PortRanges")?;
        let protocol = required(input.protocol, "Protocol")?;
        let token = required(input.idempotency_token, "IdempotencyToken")?;
        self.accelerator(&accelerator_arn)?;
        if let Some(arn) = self.created_with(&token)
            && self.listeners.iter().any(|l| l.listener_arn == arn)
        {
            return self.listener(&arn);
        }
        if self.listeners_of(&accelerator_arn).count() >= LISTENERS_PER_ACCELERATOR {
            return Err(GaError::limit_exceeded(format!(
                "An accelerator can have at most {LISTENERS_PER_ACCELERATOR} listeners"
            )));
        }
        self.validate_port_ranges(&accelerator_arn, None, protocol, &port_ranges)?;
        let listener = self.new_listener(&accelerator_arn, port_ranges, protocol);
        listener.client_affinity = input.client_affinity.unwrap_or(ClientAffinity::None);
        let arn = listener.listener_arn.clone();
        self.created_by_token.insert(token, arn.clone());
        self.listener(&arn)
    }

    fn new_listener(
        &mut self,
        accelerator_arn: &str,
        port_ranges: Vec<PortRange>,
        protocol: Protocol,
    ) -> &mut Listener {
        let seq = self.next_seq();
        self.listeners.push(Listener {
            seq,
            accelerator_arn: accelerator_arn.to_owned(),
            listener_arn: format!("{accelerator_arn}/listener/{}", hex(8)),
            port_ranges,
            protocol,
            client_affinity: ClientAffinity::None,
        });
        let last = self.listeners.len() - 1;
        &mut self.listeners[last]
    }

    /// Ranges must be well formed and must not overlap those of the accelerator's other
    /// listeners of the same protocol.
    fn validate_port_ranges(
        &self,
        accelerator_arn: &str,
        listener_arn: Option<&str>,
        protocol: Protocol,
        ranges: &[PortRange],
    ) -> Result<(), GaError> {
        if ranges.is_empty() || ranges.len() > 10 {
            return Err(GaError::invalid_port_range(
                "PortRanges must hold 1 to 10 ranges",
            ));
        }
        for range in ranges {
            if !(1..=65535).contains(&range.from_port)
                || !(1..=65535).contains(&range.to_port)
                || range.from_port > range.to_port
            {
                return Err(GaError::invalid_port_range(format!(
                    "Invalid port range {}-{}",
                    range.from_port, range.to_port
                )));
            }
        }
        let others: Vec<&PortRange> = self
            .listeners_of(accelerator_arn)
            .filter(|l| Some(l.listener_arn.as_str()) != listener_arn && l.protocol == protocol)
            .flat_map(|l| l.port_ranges.iter())
            .collect();
        let overlaps =
            |a: &PortRange, b: &PortRange| a.from_port <= b.to_port && b.from_port <= a.to_port;
        for (i, range) in ranges.iter().enumerate() {
            if ranges[i + 1..]
                .iter()
                .chain(others.iter().copied())
                .any(|other| overlaps(range, other))
            {
                return Err(GaError::invalid_port_range(format!(
                    "Port range {}-{} overlaps another range",
                    range.from_port, range.to_port
                )));
            }
        }
        Ok(())
    }

    pub fn list_listeners(
        &self,
        accelerator_arn: &str,
        page: &PageRequest,
    ) -> Result<Page<'_, Listener>, GaError> {
        self.accelerator(accelerator_arn)?;
        paginate(self.listeners_of(accelerator_arn), "listeners", page)
    }

    pub fn update_listener(&mut self, input: UpdateListener) -> Result<&Listener, GaError> {
        let arn = required(input.listener_arn, "ListenerArn")?;
        let listener = self.listener(&arn)?;
        let protocol = input.protocol.unwrap_or(listener.protocol);
        let port_ranges = input
            .port_ranges
            .unwrap_or_else(|| listener.port_ranges.clone());
        self.validate_port_ranges(
            &listener.accelerator_arn,
            Some(&arn),
            protocol,
            &port_ranges,
        )?;
        let listener = self
            .listeners
            .iter_mut()
            .find(|l| l.listener_arn == arn)
            .ok_or_else(|| GaError::listener_not_found(&arn))?;
        listener.protocol = protocol;
        listener.port_ranges = port_ranges;
        if let Some(affinity) = input.client_affinity {
            listener.client_affinity = affinity;
        }
        Ok(listener)
    }

    pub fn delete_listener(&mut self, arn: &str) -> Result<(), GaError> {
        self.listener(arn)?;
        if self.endpoint_groups.iter().any(|g| g.listener_arn == arn) {
            return Err(GaError::new(
                "AssociatedEndpointGroupFoundException",
                "The listener still has endpoint groups; delete them first",
            ));
        }
        self.listeners.retain(|l| l.listener_arn != arn);
        Ok(())
    }

    // ---- Endpoint groups

    pub fn endpoint_groups_of<'a, 'b>(
        &'a self,
        listener_arn: &'b str,
    ) -> impl Iterator<Item = &'a EndpointGroup> + use<'a, 'b> {
        self.endpoint_groups
            .iter()
            .filter(move |g| g.listener_arn == listener_arn)
    }

    pub fn endpoint_group(&self, arn: &str) -> Result<&EndpointGroup, GaError> {
        check_arn(arn, "EndpointGroupArn")?;
        self.endpoint_groups
            .iter()
            .find(|g| g.arn == arn)
            .ok_or_else(|| GaError::endpoint_group_not_found(arn))
    }

    fn endpoint_group_mut(&mut self, arn: &str) -> Result<&mut EndpointGroup, GaError> {
        check_arn(arn, "EndpointGroupArn")?;
        self.endpoint_groups
            .iter_mut()
            .find(|g| g.arn == arn)
            .ok_or_else(|| GaError::endpoint_group_not_found(arn))
    }

    pub fn create_endpoint_group(
        &mut self,
        input: CreateEndpointGroup,
    ) -> Result<&EndpointGroup, GaError> {
        let listener_arn = required(input.listener_arn, "ListenerArn")?;
        let region = required(input.endpoint_group_region, "EndpointGroupRegion")?;
        let token = required(input.idempotency_token, "IdempotencyToken")?;
        validate_region(&region)?;
        let listener = self.listener(&listener_arn)?;
        let first_port = listener.port_ranges.first().map_or(80, |r| r.from_port);
        if let Some(arn) = self.created_with(&token)
            && self.endpoint_groups.iter().any(|g| g.arn == arn)
        {
            return self.endpoint_group(&arn);
        }
        if self
            .endpoint_groups_of(&listener_arn)
            .any(|g| g.region == region)
        {
            return Err(GaError::new(
                "EndpointGroupAlreadyExistsException",
                format!("The listener already has an endpoint group in {region}"),
            ));
        }
        let mut group = self.new_endpoint_group(&listener_arn, region, first_port);
        group.apply(input.settings)?;
        let arn = group.arn.clone();
        self.endpoint_groups.push(group);
        self.created_by_token.insert(token, arn.clone());
        self.endpoint_group(&arn)
    }

    fn new_endpoint_group(
        &mut self,
        listener_arn: &str,
        region: String,
        health_check_port: i64,
    ) -> EndpointGroup {
        EndpointGroup {
            seq: self.next_seq(),
            listener_arn: listener_arn.to_owned(),
            arn: format!("{listener_arn}/endpoint-group/{}", hex(12)),
            region,
            endpoints: Vec::new(),
            traffic_dial_percentage: 100.0,
            health_check_port,
            health_check_protocol: HealthCheckProtocol::Tcp,
            health_check_path: None,
            health_check_interval_seconds: 30,
            threshold_count: 3,
            port_overrides: Vec::new(),
        }
    }

    pub fn list_endpoint_groups(
        &self,
        listener_arn: &str,
        page: &PageRequest,
    ) -> Result<Page<'_, EndpointGroup>, GaError> {
        self.listener(listener_arn)?;
        paginate(
            self.endpoint_groups_of(listener_arn),
            "endpoint-groups",
            page,
        )
    }

    /// Replaces the whole endpoint list when `EndpointConfigurations` is given, with no version
    /// check: the last writer wins, as on AWS.
    pub fn update_endpoint_group(
        &mut self,
        arn: &str,
        settings: EndpointGroupSettings,
    ) -> Result<&EndpointGroup, GaError> {
        let group = self.endpoint_group_mut(arn)?;
        let mut updated = group.clone();
        updated.apply(settings)?;
        *group = updated;
        Ok(group)
    }

    pub fn delete_endpoint_group(&mut self, arn: &str) -> Result<(), GaError> {
        self.endpoint_group(arn)?;
        self.endpoint_groups.retain(|g| g.arn != arn);
        Ok(())
    }

    /// Adds the endpoints, or updates the weight of those already in the group; answers the
    /// descriptions of the endpoints named in the request.
    pub fn add_endpoints(
        &mut self,
        arn: &str,
        configurations: Vec<EndpointConfiguration>,
    ) -> Result<(&EndpointGroup, Vec<String>), GaError> {
        if configurations.is_empty() || configurations.len() > ENDPOINTS_PER_CALL {
            return Err(GaError::invalid_argument(format!(
                "EndpointConfigurations must hold 1 to {ENDPOINTS_PER_CALL} endpoints"
            )));
        }
        let group = self.endpoint_group_mut(arn)?;
        let configurations = validate_configurations(configurations)?;
        let mut updated = group.clone();
        for config in &configurations {
            match updated.endpoint_mut(&config.id) {
                Some(existing) => {
                    existing.weight = config.weight.unwrap_or(existing.weight);
                    existing.client_ip_preservation_enabled = config
                        .client_ip_preservation_enabled
                        .unwrap_or(existing.client_ip_preservation_enabled);
                }
                None => updated.endpoints.push(config.new_endpoint()),
            }
        }
        if updated.endpoints.len() > ENDPOINTS_PER_GROUP {
            return Err(GaError::limit_exceeded(format!(
                "An endpoint group can have at most {ENDPOINTS_PER_GROUP} endpoints"
            )));
        }
        *group = updated;
        Ok((group, configurations.into_iter().map(|c| c.id).collect()))
    }

    /// Removes all the endpoints or none: one that is not in the group fails the whole call.
    pub fn remove_endpoints(
        &mut self,
        arn: &str,
        identifiers: Vec<EndpointIdentifier>,
    ) -> Result<(), GaError> {
        if identifiers.is_empty() || identifiers.len() > ENDPOINTS_PER_CALL {
            return Err(GaError::invalid_argument(format!(
                "EndpointIdentifiers must hold 1 to {ENDPOINTS_PER_CALL} endpoints"
            )));
        }
        let ids = identifiers
            .into_iter()
            .map(|i| required(i.endpoint_id, "EndpointId"))
            .collect::<Result<Vec<_>, _>>()?;
        let group = self.endpoint_group_mut(arn)?;
        if let Some(missing) = ids
            .iter()
            .find(|id| !group.endpoints.iter().any(|e| &e.id == *id))
        {
            return Err(GaError::new(
                "EndpointNotFoundException",
                format!("Endpoint {missing} is not in endpoint group {arn}"),
            ));
        }
        group.endpoints.retain(|e| !ids.contains(&e.id));
        Ok(())
    }

    // ---- Seeding

    /// Builds the seeded topology directly: the seed comes from the sandbox's own code, so it
    /// skips request validation and cannot fail.
    pub fn seed(&mut self, seed: &GaSeed) -> SeededAccelerator {
        let tags = vec![Tag {
            key: "Name".to_owned(),
            value: seed.name.clone(),
        }];
        let accelerator =
            self.new_accelerator(seed.name.clone(), IpAddressType::DualStack, &[], tags);
        let accelerator_arn = accelerator.accelerator_arn.clone();
        let dns_name = accelerator.dns_name.clone();
        let dual_stack_dns_name = accelerator.dual_stack_dns_name.clone().unwrap_or_default();
        let https = PortRange {
            from_port: 443,
            to_port: 443,
        };
        let listener_arn = self
            .new_listener(&accelerator_arn, vec![https], Protocol::Tcp)
            .listener_arn
            .clone();
        let mut group =
            self.new_endpoint_group(&listener_arn, seed.endpoint_group_region.clone(), 443);
        group.endpoints = seed
            .endpoint_ids
            .iter()
            .map(|id| Endpoint {
                health: HealthState::Healthy,
                ..ValidConfiguration::defaults(id.clone()).new_endpoint()
            })
            .collect();
        let endpoint_group_arns = vec![group.arn.clone()];
        self.endpoint_groups.push(group);
        SeededAccelerator {
            accelerator_arn,
            dns_name,
            dual_stack_dns_name,
            listener_arn,
            endpoint_group_arns,
        }
    }
}

impl EndpointGroup {
    /// Applies validated settings; on error the group is left as it was by the caller, which
    /// applies them to a copy.
    fn apply(&mut self, settings: EndpointGroupSettings) -> Result<(), GaError> {
        if let Some(dial) = settings.traffic_dial_percentage {
            if !(0.0..=100.0).contains(&dial) {
                return Err(GaError::invalid_argument(
                    "TrafficDialPercentage must be between 0 and 100",
                ));
            }
            self.traffic_dial_percentage = dial;
        }
        if let Some(port) = settings.health_check_port {
            if !(1..=65535).contains(&port) {
                return Err(GaError::invalid_argument(
                    "HealthCheckPort must be between 1 and 65535",
                ));
            }
            self.health_check_port = port;
        }
        if let Some(protocol) = settings.health_check_protocol {
            self.health_check_protocol = protocol;
        }
        if let Some(path) = settings.health_check_path {
            if !path.starts_with('/') || path.len() > 255 {
                return Err(GaError::invalid_argument(
                    "HealthCheckPath must start with / and be at most 255 characters",
                ));
            }
            self.health_check_path = Some(path);
        }
        self.health_check_path = match self.health_check_protocol {
            HealthCheckProtocol::Tcp => None,
            HealthCheckProtocol::Http | HealthCheckProtocol::Https => Some(
                self.health_check_path
                    .take()
                    .unwrap_or_else(|| "/".to_owned()),
            ),
        };
        if let Some(interval) = settings.health_check_interval_seconds {
            if interval != 10 && interval != 30 {
                return Err(GaError::invalid_argument(
                    "HealthCheckIntervalSeconds must be 10 or 30",
                ));
            }
            self.health_check_interval_seconds = interval;
        }
        if let Some(count) = settings.threshold_count {
            if !(1..=10).contains(&count) {
                return Err(GaError::invalid_argument(
                    "ThresholdCount must be between 1 and 10",
                ));
            }
            self.threshold_count = count;
        }
        if let Some(overrides) = settings.port_overrides {
            let valid_port = |p: i64| (1..=65535).contains(&p);
            if overrides.len() > 10
                || overrides
                    .iter()
                    .any(|o| !valid_port(o.listener_port) || !valid_port(o.endpoint_port))
            {
                return Err(GaError::invalid_argument(
                    "PortOverrides must hold at most 10 valid port pairs",
                ));
            }
            self.port_overrides = overrides;
        }
        if let Some(configurations) = settings.endpoint_configurations {
            if configurations.len() > ENDPOINTS_PER_GROUP {
                return Err(GaError::limit_exceeded(format!(
                    "An endpoint group can have at most {ENDPOINTS_PER_GROUP} endpoints"
                )));
            }
            let previous = std::mem::take(&mut self.endpoints);
            self.endpoints = validate_configurations(configurations)?
                .into_iter()
                .map(|config| match previous.iter().find(|e| e.id == config.id) {
                    // An endpoint that stays keeps its health: it was not added again.
                    Some(kept) => Endpoint {
                        weight: config.weight.unwrap_or(DEFAULT_WEIGHT),
                        client_ip_preservation_enabled: config
                            .client_ip_preservation_enabled
                            .unwrap_or_else(|| default_client_ip_preservation(&config.id)),
                        ..kept.clone()
                    },
                    None => config.new_endpoint(),
                })
                .collect();
        }
        Ok(())
    }
}

/// An endpoint configuration whose members were checked.
struct ValidConfiguration {
    id: String,
    weight: Option<u8>,
    client_ip_preservation_enabled: Option<bool>,
}

impl ValidConfiguration {
    fn defaults(id: String) -> Self {
        ValidConfiguration {
            id,
            weight: None,
            client_ip_preservation_enabled: None,
        }
    }

    fn new_endpoint(&self) -> Endpoint {
        Endpoint {
            id: self.id.clone(),
            weight: self.weight.unwrap_or(DEFAULT_WEIGHT),
            client_ip_preservation_enabled: self
                .client_ip_preservation_enabled
                .unwrap_or_else(|| default_client_ip_preservation(&self.id)),
            health: HealthState::Initial,
            added_at: Instant::now(),
        }
    }
}

fn validate_configurations(
    configurations: Vec<EndpointConfiguration>,
) -> Result<Vec<ValidConfiguration>, GaError> {
    let mut valid: Vec<ValidConfiguration> = Vec::with_capacity(configurations.len());
    for config in configurations {
        let id = required(config.endpoint_id, "EndpointId")?;
        if id.is_empty() || id.len() > 255 {
            return Err(GaError::invalid_argument(
                "EndpointId must be 1 to 255 characters",
            ));
        }
        if valid.iter().any(|v| v.id == id) {
            return Err(GaError::invalid_argument(format!(
                "Endpoint {id} is given more than once"
            )));
        }
        let weight = config
            .weight
            .map(|w| {
                u8::try_from(w).map_err(|_| {
                    GaError::invalid_argument(format!("Weight {w} is not between 0 and 255"))
                })
            })
            .transpose()?;
        valid.push(ValidConfiguration {
            id,
            weight,
            client_ip_preservation_enabled: config.client_ip_preservation_enabled,
        });
    }
    Ok(valid)
}

/// AWS preserves client IPs by default for ALBs and EC2 instances, not for NLBs and Elastic IPs.
fn default_client_ip_preservation(endpoint_id: &str) -> bool {
    !(endpoint_id.contains(":loadbalancer/net/") || endpoint_id.starts_with("eipalloc-"))
}

fn check_arn(arn: &str, member: &str) -> Result<(), GaError> {
    if arn.starts_with("arn:aws:globalaccelerator::") {
        Ok(())
    } else {
        Err(GaError::invalid_argument(format!(
            "{member} {arn:?} is not a Global Accelerator ARN"
        )))
    }
}

fn validate_accelerator_name(name: &str) -> Result<(), GaError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let edge = |c: Option<char>| matches!(c, Some('.' | '-'));
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(allowed)
        || edge(name.chars().next())
        || edge(name.chars().last())
    {
        return Err(GaError::invalid_argument(
            "Name must be 1 to 64 letters, digits, periods or hyphens, and must not begin or end with a period or hyphen",
        ));
    }
    Ok(())
}

fn validate_tags(tags: &[Tag]) -> Result<(), GaError> {
    match tags
        .iter()
        .find(|t| t.key.is_empty() || t.key.len() > 128 || t.value.len() > 256)
    {
        Some(tag) => Err(GaError::invalid_argument(format!(
            "Invalid tag {:?}",
            tag.key
        ))),
        None => Ok(()),
    }
}

fn validate_ip_addresses(addresses: &[String]) -> Result<(), GaError> {
    if addresses.len() > 2
        || addresses
            .iter()
            .any(|a| a.parse::<std::net::IpAddr>().is_err())
    {
        return Err(GaError::invalid_argument(
            "IpAddresses must hold at most 2 IP addresses",
        ));
    }
    Ok(())
}

fn validate_region(region: &str) -> Result<(), GaError> {
    let parts: Vec<&str> = region.split('-').collect();
    let word = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase());
    let well_formed = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(word)
        && parts.last().is_some_and(|p| p.parse::<u8>().is_ok());
    if well_formed {
        Ok(())
    } else {
        Err(GaError::invalid_argument(format!(
            "{region:?} is not an AWS region"
        )))
    }
}

/// Addresses from the documentation ranges (RFC 5737, RFC 3849): they look real and route nowhere.
fn ip_sets(ip_address_type: IpAddressType, given: &[String]) -> Vec<IpSet> {
    let (given_v6, given_v4): (Vec<String>, Vec<String>) =
        given.iter().cloned().partition(|a| a.contains(':'));
    let v4 = if given_v4.is_empty() {
        vec![
            format!("192.0.2.{}", fastrand::u8(1..255)),
            format!("198.51.100.{}", fastrand::u8(1..255)),
        ]
    } else {
        given_v4
    };
    let mut sets = vec![IpSet {
        ip_family: "IPv4",
        ip_addresses: v4,
        ip_address_family: "IPv4",
    }];
    if ip_address_type == IpAddressType::DualStack {
        let v6 = if given_v6.is_empty() {
            vec![
                format!("2001:db8:1::{}", hex(4)),
                format!("2001:db8:2::{}", hex(4)),
            ]
        } else {
            given_v6
        };
        sets.push(IpSet {
            ip_family: "IPv6",
            ip_addresses: v6,
            ip_address_family: "IPv6",
        });
    }
    sets
}

fn dual_stack_dns_name(ip_address_type: IpAddressType) -> Option<String> {
    (ip_address_type == IpAddressType::DualStack)
        .then(|| format!("{}.dualstack.awsglobalaccelerator.com", hex(16)))
}

trait Sequenced {
    fn seq(&self) -> u64;
}

impl Sequenced for Accelerator {
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Sequenced for Listener {
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Sequenced for EndpointGroup {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// Pages in creation order. The token names the kind of list and the last item returned, so
/// that a deletion between two pages neither repeats nor skips an item.
fn paginate<'a, T: Sequenced + 'a>(
    items: impl Iterator<Item = &'a T>,
    kind: &str,
    request: &PageRequest,
) -> Result<Page<'a, T>, GaError> {
    let limit = match request.max_results {
        None => DEFAULT_PAGE_SIZE,
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n as usize,
        Some(n) => {
            return Err(GaError::invalid_argument(format!(
                "MaxResults must be between 1 and {MAX_PAGE_SIZE}, got {n}"
            )));
        }
    };
    let after = match request.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => Some(decode_token(kind, token)?),
    };
    let mut rest = items.filter(|item| after.is_none_or(|after| item.seq() > after));
    let page: Vec<&T> = rest.by_ref().take(limit).collect();
    let next_token = match (page.last(), rest.next()) {
        (Some(last), Some(_)) => Some(URL_SAFE_NO_PAD.encode(format!("{kind}/{}", last.seq()))),
        _ => None,
    };
    Ok(Page {
        items: page,
        next_token,
    })
}

fn decode_token(kind: &str, token: &str) -> Result<u64, GaError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (token_kind, seq) = text.split_once('/')?;
            (token_kind == kind).then(|| seq.parse().ok()).flatten()
        })
        .ok_or_else(|| GaError::new("InvalidNextTokenException", "The NextToken is not valid"))
}

fn epoch_seconds() -> f64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Milliseconds, like the timestamps AWS sends.
    (since_epoch.as_millis() as f64) / 1000.0
}

fn hex(len: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..len)
        .map(|_| char::from(DIGITS[fastrand::usize(..16)]))
        .collect()
}

pub(super) fn uuid() -> String {
    let variant = char::from(b"89ab"[fastrand::usize(..4)]);
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        hex(8),
        hex(4),
        hex(3),
        hex(3),
        hex(12)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(page: &Page<'_, Accelerator>) -> Vec<String> {
        page.items.iter().map(|a| a.name.clone()).collect()
    }

    fn page(max_results: i64, next_token: Option<String>) -> PageRequest {
        PageRequest {
            max_results: Some(max_results),
            next_token,
        }
    }

    #[test]
    fn deleting_between_pages_neither_repeats_nor_skips() {
        let mut topology = Topology::default();
        for name in ["a", "b", "c", "d"] {
            topology.new_accelerator(name.to_owned(), IpAddressType::Ipv4, &[], Vec::new());
        }
        let first = topology
            .list_accelerators(&page(2, None))
            .expect("first page");
        assert_eq!(names(&first), ["a", "b"]);
        let token = first.next_token.clone();
        topology.accelerators.retain(|a| a.name != "a");
        let second = topology
            .list_accelerators(&page(2, token))
            .expect("second page");
        assert_eq!(names(&second), ["c", "d"]);
        assert_eq!(second.next_token, None, "no empty last page");
    }

    #[test]
    fn a_token_from_another_list_is_invalid() {
        let mut topology = Topology::default();
        let seeded = topology.seed(&GaSeed {
            name: "seed".to_owned(),
            endpoint_group_region: "eu-west-1".to_owned(),
            endpoint_ids: Vec::new(),
        });
        topology.new_accelerator("second".to_owned(), IpAddressType::Ipv4, &[], Vec::new());
        let accelerators = topology.list_accelerators(&page(1, None)).expect("a page");
        let foreign = page(1, accelerators.next_token.clone());
        let error = topology
            .list_listeners(&seeded.accelerator_arn, &foreign)
            .err()
            .map(|e| e.code);
        assert_eq!(error.as_deref(), Some("InvalidNextTokenException"));
    }
}
