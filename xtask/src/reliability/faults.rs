//! The fault-survival table: one fault at a time, a `SiteOffline` report (site-a reports site-b),
//! Alertmanager's behaviour on the answer (resend on 5xx and network errors), the fault lifted
//! when a real one would pass, and the end state checked: site-b's endpoints gone, site-a's
//! there, site-a's backup to site-b offline for every cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fence_lambda::config::vars;
use sandbox::world::SITES;
use serde_json::json;

use super::lab::{FenceSetup, Lab};

const A: &str = SITES[0];
const B: &str = SITES[1];

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub rows: Vec<Row>,
    pub survived: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub fault: &'static str,
    /// Status of each attempt, in order.
    pub answers: Vec<u16>,
    pub seconds: f64,
    pub survived: bool,
    pub result: String,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    GaConflictWithinBudget,
    GaConflictPastBudget,
    GaThrottlingRemove,
    GaThrottlingDescribe,
    SecretsUnavailable,
    InfinispanDownThenUp,
    InfinispanCacheFailed,
    InfinispanPasswordRejected,
    PreferredInfinispanDown,
    TimeoutMidFence,
}

impl Fault {
    const ALL: [Fault; 10] = [
        Fault::GaConflictWithinBudget,
        Fault::GaConflictPastBudget,
        Fault::GaThrottlingRemove,
        Fault::GaThrottlingDescribe,
        Fault::SecretsUnavailable,
        Fault::InfinispanDownThenUp,
        Fault::InfinispanCacheFailed,
        Fault::InfinispanPasswordRejected,
        Fault::PreferredInfinispanDown,
        Fault::TimeoutMidFence,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::GaConflictWithinBudget => {
                "GA TransactionInProgressException x3 on RemoveEndpoints"
            }
            Fault::GaConflictPastBudget => {
                "GA TransactionInProgressException past the retry budget"
            }
            Fault::GaThrottlingRemove => "GA ThrottlingException x3 on RemoveEndpoints",
            Fault::GaThrottlingDescribe => "GA ThrottlingException x6 on DescribeEndpointGroup",
            Fault::SecretsUnavailable => "Secrets Manager unavailable (503), then back",
            Fault::InfinispanDownThenUp => "survivor's Infinispan down, then up",
            Fault::InfinispanCacheFailed => "Infinispan 200 with one cache failed",
            Fault::InfinispanPasswordRejected => "Infinispan rejects the password once (401)",
            Fault::PreferredInfinispanDown => "preferred site's Infinispan down (site-b survives)",
            Fault::TimeoutMidFence => "Lambda timeout between GA removal and take-offline",
        }
    }

    /// The site that must survive.
    fn survivor(self) -> &'static str {
        match self {
            Fault::PreferredInfinispanDown => B,
            _ => A,
        }
    }

    async fn inject(self, lab: &Lab) -> anyhow::Result<()> {
        let remove_fault = |error: &str, count: u32| json!({"operation": "RemoveEndpoints", "error": error, "count": count});
        match self {
            Fault::GaConflictWithinBudget => {
                lab.ga_fault(remove_fault("TransactionInProgressException", 3))
                    .await
            }
            Fault::GaConflictPastBudget => {
                lab.ga_fault(remove_fault("TransactionInProgressException", 100_000))
                    .await
            }
            Fault::GaThrottlingRemove => lab.ga_fault(remove_fault("ThrottlingException", 3)).await,
            Fault::GaThrottlingDescribe => {
                lab.ga_fault(json!({"operation": "DescribeEndpointGroup", "error": "ThrottlingException", "count": 6}))
                    .await
            }
            Fault::SecretsUnavailable => {
                lab.aws_fault(json!({"service": "secretsmanager", "operation": "GetSecretValue", "status": 503, "count": 100_000}))
                    .await
            }
            Fault::InfinispanDownThenUp => {
                // site-b UNHEALTHY: site-a survives without a probe; its Infinispan is down when
                // the backup must go offline.
                lab.unhealthy(B).await?;
                lab.ispn_down(A, true).await
            }
            Fault::InfinispanCacheFailed => {
                lab.ispn_fault(A, json!({"operation": "take-offline", "cache_failures": {"work": "ISPN000000: boom"}, "count": 1}))
                    .await
            }
            Fault::InfinispanPasswordRejected => {
                lab.ispn_fault(A, json!({"operation": "take-offline", "status": 401, "count": 1}))
                    .await
            }
            Fault::PreferredInfinispanDown => lab.ispn_down(A, true).await,
            Fault::TimeoutMidFence => {
                lab.ispn_fault(A, json!({"operation": "take-offline", "delay_ms": 10_000, "count": 1}))
                    .await
            }
        }
    }

    /// Called after the first answer: what makes a real fault pass.
    async fn lift(self, lab: &Lab) -> anyhow::Result<()> {
        match self {
            Fault::GaConflictPastBudget => lab.ga_fault(json!({"reset": true})).await,
            Fault::SecretsUnavailable => lab.aws_fault(json!({"reset": true})).await,
            Fault::InfinispanDownThenUp => lab.ispn_down(A, false).await,
            _ => Ok(()),
        }
    }
}

async fn row(lab: &Lab, fault: Fault) -> anyhow::Result<Row> {
    lab.reset().await?;
    fault.inject(lab).await?;
    let started = Instant::now();
    let mut answers = Vec::new();
    let mut last_body = String::new();
    // The report site-a sends; with PreferredInfinispanDown site-b's report is the one that
    // reaches the function (site-a's Infinispan is down).
    let (reporter, offline) = match fault {
        Fault::PreferredInfinispanDown => (B, A),
        _ => (A, B),
    };
    while started.elapsed() < Duration::from_secs(60) {
        let (status, body) = match lab.report(reporter, offline).await {
            Ok(answer) => (answer.status, answer.body.to_string()),
            Err(err) => (0, format!("{err:#}")),
        };
        answers.push(status);
        last_body = body;
        if answers.len() == 1 {
            fault.lift(lab).await?;
        }
        if (200..300).contains(&status) || (400..500).contains(&status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seconds = started.elapsed().as_secs_f64();

    let survivor = fault.survivor();
    let loser = if survivor == A { B } else { A };
    let groups = lab.endpoint_groups().await?;
    let present = |site: &str| groups.values().flatten().any(|s| s == site);
    let backups = lab.backups(survivor).await?;
    let offline = !backups.is_empty() && backups.values().all(|b| b == "offline");
    let finished = answers.last().is_some_and(|s| (200..300).contains(s));
    let mut problems = Vec::new();
    if !finished {
        problems.push(format!("no 2xx ({last_body})"));
    }
    if present(loser) {
        problems.push(format!("{loser} still in the accelerator"));
    }
    if !present(survivor) {
        problems.push(format!("{survivor} removed"));
    }
    if !offline {
        problems.push(format!("{survivor}'s backups {backups:?}"));
    }
    let survived = problems.is_empty();
    let shown: Vec<String> = answers.iter().map(u16::to_string).collect();
    Ok(Row {
        fault: fault.name(),
        result: if survived {
            format!(
                "survived: answers {}, {loser} fenced in {seconds:.1} s",
                shown.join(" → ")
            )
        } else {
            format!(
                "NOT survived: answers {}: {}",
                shown.join(" → "),
                problems.join("; ")
            )
        },
        answers,
        seconds,
        survived,
    })
}

/// Runs the table in its own world: a short Lambda timeout (4 s) so that a hang times the
/// function out, a short retry budget, and no secret cache (every invocation reads Secrets
/// Manager, so that its outage is seen).
pub async fn run(
    base: &Path,
    fence: &Path,
) -> anyhow::Result<(Figures, Vec<PathBuf>, Vec<String>)> {
    let setup = FenceSetup {
        instances: 2,
        timeout: Duration::from_secs(4),
        extra_env: vec![
            (vars::RETRY_BUDGET_SECONDS.into(), "1".into()),
            (vars::SECRET_TTL_SECONDS.into(), "0".into()),
        ],
        ..FenceSetup::default()
    };
    let lab = Lab::start(&base.join("faults"), fence, &setup).await?;
    let mut figures = Figures::default();
    let mut outcome = Ok(());
    for fault in Fault::ALL {
        match row(&lab, fault).await {
            Ok(row) => figures.rows.push(row),
            Err(err) => {
                outcome = Err(err);
                break;
            }
        }
    }
    let dirs = vec![lab.dir.join("logs")];
    let secrets = lab.secrets();
    lab.shutdown().await;
    outcome?;
    figures.survived = figures.rows.iter().filter(|r| r.survived).count();
    Ok((figures, dirs, secrets))
}
