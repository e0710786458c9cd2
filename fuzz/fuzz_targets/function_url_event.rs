//! The fence's whole request path from the raw Function URL event (payload 2.0): the envelope
//! (headers, base64 bodies), then authentication, content type, the webhook and every alert, the
//! survivor rule and the answer, against a fixed two-site world.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_topology::decisions::{DecisionRecord, Recorded};
use aws_topology::globalaccelerator::{
    Endpoint, EndpointGroup, Health, Removal, Topology, TrafficDial,
};
use common::auth::BasicCredentials;
use common::secret::Secret;
use common::site::{AcceleratorDns, SiteName};
use fence_lambda::decide::{Liveness, Policy};
use fence_lambda::handler::{Failure, Settings, World};
use ispn_client::CacheResults;
use libfuzzer_sys::fuzz_target;

struct FixedWorld {
    topology: Topology,
}

impl World for FixedWorld {
    async fn webhook_credentials(&self) -> Result<BasicCredentials, Failure> {
        Ok(BasicCredentials {
            user: "sitefence".to_owned(),
            password: Secret::new("webhook-password"),
        })
    }
    async fn topology(&self, _: &AcceleratorDns) -> Result<Option<Topology>, Failure> {
        Ok(Some(self.topology.clone()))
    }
    async fn reread_webhook_credentials(
        &self,
        _: &BasicCredentials,
    ) -> Result<Option<BasicCredentials>, Failure> {
        Ok(None)
    }
    fn forget_topology(&self, _: &AcceleratorDns) {}
    async fn read_secrets_afresh(&self) -> Result<(), Failure> {
        Ok(())
    }
    async fn backup_status(
        &self,
        _: &SiteName,
    ) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        Ok(std::collections::BTreeMap::new())
    }
    async fn probe(&self, _: &SiteName) -> Result<Liveness, Failure> {
        Ok(Liveness::Alive)
    }
    // Every report decides afresh: the record store has nothing (the fuzzer looks for
    // panics and statuses, not for agreement between reports).
    async fn record(&self, _: &DecisionRecord, _: Option<&str>) -> Result<Recorded, Failure> {
        Ok(Recorded::Created)
    }
    async fn recorded(&self, _: &str) -> Result<Option<DecisionRecord>, Failure> {
        Ok(None)
    }
    async fn set_traffic_dial(&self, _: &str, _: TrafficDial, _: Instant) -> Result<(), Failure> {
        Ok(())
    }
    async fn remove_endpoints(
        &self,
        _: &str,
        endpoint_ids: &[String],
        _: Instant,
    ) -> Result<Removal, Failure> {
        Ok(Removal {
            removed: endpoint_ids.to_vec(),
            ..Removal::default()
        })
    }
    async fn take_offline(&self, _: &SiteName, _: &SiteName) -> Result<CacheResults, Failure> {
        Ok(CacheResults::default())
    }
    async fn notify(&self, _: &str, _: &serde_json::Value) {}
}

fn site(name: &str) -> SiteName {
    SiteName::parse(name).expect("a valid site name")
}

fn world() -> &'static (FixedWorld, Settings, tokio::runtime::Runtime) {
    static WORLD: OnceLock<(FixedWorld, Settings, tokio::runtime::Runtime)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let endpoint = |id: &str, s: &str| Endpoint {
            id: id.to_owned(),
            site: Some(site(s)),
            weight: Some(128),
            health: Health::Healthy,
        };
        let topology = Topology {
            accelerator_arn: "arn:aws:globalaccelerator::1:accelerator/a".to_owned(),
            listeners: vec!["arn:aws:globalaccelerator::1:accelerator/a/listener/l".to_owned()],
            groups: vec![EndpointGroup {
                arn: "arn:aws:globalaccelerator::1:accelerator/a/listener/l/endpoint-group/g"
                    .to_owned(),
                listener_arn: "arn:aws:globalaccelerator::1:accelerator/a/listener/l".to_owned(),
                region: "eu-west-1".to_owned(),
                traffic_dial: TrafficDial::FULL,
                endpoints: vec![endpoint("lb-a", "site-a"), endpoint("lb-b", "site-b")],
            }],
        };
        let settings = Settings {
            alert_name: "SiteOffline".to_owned(),
            policy: Policy {
                sites: BTreeSet::from([site("site-a"), site("site-b")]),
                preferred: site("site-a"),
            },
            retry_budget: Duration::from_secs(1),
            decision_stale_after: Duration::from_secs(900),
            mode: common::mode::Mode::Enforce,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        (FixedWorld { topology }, settings, runtime)
    })
}

fuzz_target!(|event: &[u8]| {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(event) else {
        return;
    };
    let (world, settings, runtime) = world();
    let response = runtime.block_on(fence_lambda::event::handle_event(
        world, settings, event, 0, "fuzz",
    ));
    assert!(
        matches!(response.status_code, 200 | 400 | 401 | 413 | 415 | 500 | 503),
        "unexpected status {}",
        response.status_code
    );
});
