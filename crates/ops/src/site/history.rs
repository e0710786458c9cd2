//! `site history`: the fence's recorded decisions, newest first — when, who reported, who
//! survived and by which rule, the steps done and the time to complete, the mode, and whether
//! each still stands.
//!
//! The decision table holds one item per split-brain (a pair of sites behind an accelerator):
//! a later decision of the same pair replaces the earlier one, so the history is what the table
//! holds now, one decision per pair. The completion (when, what was done, every reporter that
//! carried the decision out) is added by the fence after its work and may be missing: the
//! update is best effort, and a record written by an earlier version has none.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use aws_topology::decisions::{DEFAULT_STALE_AFTER, DecisionStore, Entry, Mode, Standing};
use aws_topology::globalaccelerator::{GlobalAccelerator, Topology};
use common::site::{AcceleratorDns, SiteName};
use serde::Serialize;

use super::Target;
use super::observe::now_ms;
use super::render::utc;
use crate::aws::{self, Aws};
use crate::config::Deployment;

#[derive(clap::Args, Debug, Clone)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: Target,
    /// At most this many decisions, the newest.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only decisions made within this long before now: `90s`, `30m`, `12h`, `7d`.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<Duration>,
    /// Print the decisions as JSON rather than as a table.
    #[arg(long)]
    pub json: bool,
}

/// One decision as `site history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub split_brain: String,
    pub decision_id: String,
    pub decided_at_ms: u64,
    /// `decided_at_ms` as UTC, to the second.
    pub decided_at: String,
    /// The site whose report decided.
    pub decided_by: SiteName,
    /// Every site whose report carried the decision out to completion, the decider first.
    pub reporters: Vec<SiteName>,
    pub survivor: SiteName,
    pub loser: SiteName,
    pub rule: String,
    pub mode: &'static str,
    /// What the first report that completed the fence did; empty when no completion is
    /// recorded.
    pub steps: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
    /// From the decision to the first report that found the fence complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_complete_ms: Option<u64>,
    /// `stands`, `closed`, `stale`, or `open` when the accelerator could not be read (a record
    /// that is not closed stands unless the loser takes traffic again).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// What `site history` read.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub table: String,
    pub decisions: Vec<Row>,
    /// Items that are not decision records the fence could have written, each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub malformed: Vec<String>,
    /// Why standing could not be judged against the accelerator, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator_unread: Option<String>,
}

/// `--since`: a number and a unit (`s`, `m`, `h`, `d`).
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}`: give a unit, e.g. `30m`, `12h` or `7d`"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a number and a unit, e.g. `12h`"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is one of s, m, h, d")),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// The rows of `entries`, newest first, within `since` of `now_ms` and at most `limit` of
/// them; standing judged against `topology` when it was read.
pub fn rows(
    entries: Vec<Entry>,
    topology: Option<&Topology>,
    now_ms: u64,
    since: Option<Duration>,
    limit: Option<usize>,
) -> Vec<Row> {
    let oldest = since
        .map(|since| now_ms.saturating_sub(u64::try_from(since.as_millis()).unwrap_or(u64::MAX)));
    let mut rows: Vec<Row> = entries
        .into_iter()
        .filter(|e| oldest.is_none_or(|oldest| e.record.decided_at_ms >= oldest))
        .map(|entry| row(entry, topology, now_ms))
        .collect();
    rows.sort_by(|x, y| {
        y.decided_at_ms
            .cmp(&x.decided_at_ms)
            .then_with(|| x.split_brain.cmp(&y.split_brain))
    });
    if let Some(limit) = limit {
        rows.truncate(limit);
    }
    rows
}

fn row(entry: Entry, topology: Option<&Topology>, now_ms: u64) -> Row {
    let Entry { record, completion } = entry;
    let (state, why) = match (topology, &record.closed) {
        (_, Some(closure)) => (
            "closed",
            Some(format!("{} by {}", utc(closure.at_ms), closure.by)),
        ),
        (Some(topology), None) => match record.standing(topology, now_ms, DEFAULT_STALE_AFTER) {
            Standing::Stands => ("stands", None),
            Standing::Closed => ("closed", None),
            Standing::Stale(why) => ("stale", Some(why)),
        },
        (None, None) => ("open", None),
    };
    let mut reporters = vec![record.reporter.clone()];
    let mut steps = Vec::new();
    let mut completed_at_ms = None;
    if let Some(completion) = completion {
        let others: BTreeSet<SiteName> = completion
            .reporters
            .into_iter()
            .filter(|r| *r != record.reporter)
            .collect();
        reporters.extend(others);
        steps = completion.steps;
        completed_at_ms = Some(completion.completed_at_ms);
    }
    Row {
        decided_at: utc(record.decided_at_ms),
        time_to_complete_ms: completed_at_ms.map(|at| at.saturating_sub(record.decided_at_ms)),
        completed_at_ms,
        split_brain: record.split_brain,
        decision_id: record.decision_id,
        decided_at_ms: record.decided_at_ms,
        decided_by: record.reporter,
        reporters,
        survivor: record.survivor,
        loser: record.loser,
        rule: record.rule,
        mode: match record.mode {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        },
        steps,
        state,
        why,
    }
}

/// The table: one line per decision, newest first, its steps (or why there are none) and
/// standing under it.
pub fn render(history: &History) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "decision records (table {}):", history.table);
    if let Some(why) = &history.accelerator_unread {
        let _ = writeln!(
            out,
            "  (standing not judged against the accelerator: {why}; `open` = not closed)"
        );
    }
    if history.decisions.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:<20}  {:<7}  {:<10}  {:<10}  {:<26}  {:<20}  {:>11}  state",
            "decided (UTC)", "mode", "survivor", "loser", "rule", "reporters", "completed"
        );
    }
    for row in &history.decisions {
        let reporters = row
            .reporters
            .iter()
            .map(SiteName::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let completed = match row.time_to_complete_ms {
            Some(ms) if ms < 10_000 => format!("in {ms} ms"),
            Some(ms) => format!("in {:.1} s", ms as f64 / 1000.0),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<20}  {:<7}  {:<10}  {:<10}  {:<26}  {:<20}  {:>11}  {}",
            row.decided_at,
            row.mode,
            row.survivor.as_str(),
            row.loser.as_str(),
            row.rule,
            reporters,
            completed,
            row.state
        );
        let steps = if row.steps.is_empty() {
            "no completion recorded (not complete yet, or the fence could not record it)".to_owned()
        } else {
            row.steps.join("; ")
        };
        let _ = writeln!(out, "      steps: {steps}");
        if let Some(why) = &row.why {
            let _ = writeln!(out, "      {}: {why}", row.state);
        }
        let _ = writeln!(
            out,
            "      split-brain {}, decision {}",
            row.split_brain, row.decision_id
        );
    }
    for malformed in &history.malformed {
        let _ = writeln!(out, "  unreadable: {malformed}");
    }
    out
}

/// Reads the decision table (and the accelerator, to judge standing) of the deployment
/// `--config` names.
pub async fn read(args: &HistoryArgs) -> anyhow::Result<History> {
    let deployment = Deployment::load(&args.target.config)?;
    read_deployment(&deployment, &args.target.aws, args.since, args.limit).await
}

/// [`read`], for a deployment already loaded (the drill's).
pub async fn read_deployment(
    deployment: &Deployment,
    aws_args: &aws::AwsArgs,
    since: Option<Duration>,
    limit: Option<usize>,
) -> anyhow::Result<History> {
    let regional = Aws::load(aws_args, deployment).await.regional;
    let store = DecisionStore::new(&regional, deployment.decision_table());
    let table = store.table().to_owned();
    let read = store.entries().await;
    let entries = match read {
        Ok(entries) => entries,
        Err(err) if err.has_code("ResourceNotFoundException") => anyhow::bail!(
            "the decision table {table} does not exist: `deploy` creates it with the fence"
        ),
        Err(err) => return Err(err).with_context(|| format!("reading the table {table}")),
    };
    let mut records = Vec::new();
    let mut malformed = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => records.push(entry),
            Err(err) => malformed.push(err.to_string()),
        }
    }
    let topology = accelerator_topology(deployment, aws_args, &regional).await;
    let (topology, accelerator_unread) = match topology {
        Ok(topology) => (Some(topology), None),
        Err(err) => (None, Some(format!("{err:#}"))),
    };
    Ok(History {
        table,
        decisions: rows(records, topology.as_ref(), now_ms(), since, limit),
        malformed,
        accelerator_unread,
    })
}

async fn accelerator_topology(
    deployment: &Deployment,
    aws_args: &aws::AwsArgs,
    regional: &aws_config::SdkConfig,
) -> anyhow::Result<Topology> {
    let dns = AcceleratorDns::parse(&deployment.accelerator.dns_name)
        .map_err(|e| anyhow::anyhow!("accelerator.dns_name: {e}"))?;
    let config = aws::load(
        aws_args,
        deployment.accelerator.endpoint_url.clone(),
        deployment.accelerator.region.clone(),
    )
    .await;
    GlobalAccelerator::new(&config)
        .with_elbv2_config(regional)
        .topology(&dns)
        .await
        .context("reading the Global Accelerator")?
        .with_context(|| format!("no accelerator is named {}", dns.as_str()))
}

/// `site history`: prints the table (or `--json`).
pub async fn run(args: &HistoryArgs) -> anyhow::Result<History> {
    let history = read(args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&history)?);
    } else {
        print!("{}", render(&history));
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_topology::decisions::{Closure, Completion, DecisionRecord};
    use aws_topology::globalaccelerator::{Endpoint, EndpointGroup, Health, TrafficDial};

    fn site(name: &str) -> SiteName {
        SiteName::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn entry(key: &str, decided_at_ms: u64, completion: Option<Completion>) -> Entry {
        Entry {
            record: DecisionRecord {
                split_brain: key.into(),
                decision_id: format!("req-{decided_at_ms}"),
                survivor: site("site-a"),
                loser: site("site-b"),
                rule: "offline_site_unhealthy".into(),
                reporter: site("site-a"),
                decided_at_ms,
                request_id: format!("req-{decided_at_ms}"),
                facts: serde_json::json!({}),
                mode: Mode::Enforce,
                closed: None,
            },
            completion,
        }
    }

    fn fenced() -> Topology {
        Topology {
            accelerator_arn: "acc".into(),
            listeners: vec!["l".into()],
            groups: vec![EndpointGroup {
                arn: "l/endpoint-group/g".into(),
                listener_arn: "l".into(),
                region: "eu-west-1".into(),
                traffic_dial: TrafficDial::FULL,
                endpoints: vec![Endpoint {
                    id: "lb-a".into(),
                    site: Some(site("site-a")),
                    weight: Some(128),
                    health: Health::Healthy,
                }],
            }],
        }
    }

    #[test]
    fn newest_first_within_since_and_limit() {
        let now = 10_000_000;
        let entries = || {
            vec![
                entry("acc/a+b", now - 5_000_000, None),
                entry("acc2/a+b", now - 1_000, None),
                entry("acc3/a+b", now - 60_000, None),
            ]
        };
        let keys = |rows: Vec<Row>| rows.into_iter().map(|r| r.split_brain).collect::<Vec<_>>();
        assert_eq!(
            keys(rows(entries(), None, now, None, None)),
            ["acc2/a+b", "acc3/a+b", "acc/a+b"]
        );
        assert_eq!(
            keys(rows(entries(), None, now, None, Some(1))),
            ["acc2/a+b"]
        );
        assert_eq!(
            keys(rows(
                entries(),
                None,
                now,
                Some(Duration::from_secs(3600)),
                None
            )),
            ["acc2/a+b", "acc3/a+b"]
        );
    }

    #[test]
    fn a_completed_fence_shows_its_steps_reporters_and_time_to_complete() {
        let completion = Completion {
            completed_at_ms: 1_400,
            steps: vec![
                "removed 1 endpoint(s)".into(),
                "site-a's backup to site-b offline (4 cache(s))".into(),
            ],
            reporters: BTreeSet::from([site("site-b"), site("site-a")]),
        };
        let [row] = <[Row; 1]>::try_from(rows(
            vec![entry("k", 1_000, Some(completion))],
            Some(&fenced()),
            2_000,
            None,
            None,
        ))
        .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(row.reporters, [site("site-a"), site("site-b")]);
        assert_eq!(row.time_to_complete_ms, Some(400));
        assert_eq!(row.state, "stands");
        let table = render(&History {
            table: "t".into(),
            decisions: vec![row],
            malformed: vec!["decision record x: no string attribute `loser`".into()],
            accelerator_unread: None,
        });
        assert!(table.contains("site-a,site-b"), "{table}");
        assert!(table.contains("in 400 ms"), "{table}");
        assert!(
            table.contains("steps: removed 1 endpoint(s); site-a's backup"),
            "{table}"
        );
        assert!(table.contains("unreadable: decision record x"), "{table}");
    }

    #[test]
    fn without_completion_or_accelerator_it_says_so() {
        let mut closed = entry("k2", 500, None);
        closed.record.closed = Some(Closure {
            at_ms: 900,
            by: "site bring-online".into(),
        });
        let rows = rows(
            vec![entry("k", 1_000, None), closed],
            None,
            2_000,
            None,
            None,
        );
        assert_eq!(
            rows.iter().map(|r| r.state).collect::<Vec<_>>(),
            ["open", "closed"]
        );
        let table = render(&History {
            table: "t".into(),
            decisions: rows,
            malformed: Vec::new(),
            accelerator_unread: Some("no accelerator".into()),
        });
        assert!(table.contains("no completion recorded"), "{table}");
        assert!(table.contains("by site bring-online"), "{table}");
    }

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_since("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["12", "h", "3w", "-1h", ""] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
