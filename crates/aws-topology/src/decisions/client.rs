//! The decision records in DynamoDB: one item per split-brain, keyed by [`KEY_ATTRIBUTE`].

use std::collections::{BTreeSet, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use common::site::SiteName;

use super::*;
use crate::retry::AwsError;

type Item = HashMap<String, AttributeValue>;

/// The table of decision records.
#[derive(Debug, Clone)]
pub struct DecisionStore {
    client: Client,
    table: String,
}

const STATE: &str = "state";
/// The completion's attributes (see [`Completion`]): absent until a report completes the fence.
const COMPLETED_AT: &str = "completed_at_ms";
const STEPS: &str = "steps";
const REPORTERS: &str = "reporters";
const OPEN: &str = "open";
const CLOSED: &str = "closed";

impl DecisionStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> DecisionStore {
        DecisionStore {
            client: Client::new(config),
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates `record` unless a standing one is there: with `replacing` `None`, when there is
    /// no record or a closed one; with `Some(id)`, only over the record with that
    /// `decision_id` (a stale one). When the condition fails the record in place comes back in
    /// the same call.
    pub async fn create(
        &self,
        record: &DecisionRecord,
        replacing: Option<&str>,
    ) -> Result<Recorded, AwsError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#state", STATE);
        let request = match replacing {
            None => request
                .condition_expression(format!(
                    "attribute_not_exists({KEY_ATTRIBUTE}) OR #state = :closed"
                ))
                .expression_attribute_values(":closed", AttributeValue::S(CLOSED.to_owned())),
            Some(id) => request
                .condition_expression("decision_id = :replaced AND #state = :open")
                .expression_attribute_values(":replaced", AttributeValue::S(id.to_owned()))
                .expression_attribute_values(":open", AttributeValue::S(OPEN.to_owned())),
        };
        match request.send().await {
            Ok(_) => Ok(Recorded::Created),
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                let PutItemError::ConditionalCheckFailedException(failed) = context.err() else {
                    unreachable!("matched above");
                };
                match failed.item() {
                    Some(item) => from_item(item)
                        .map(|r| Recorded::Existing(Box::new(r)))
                        .map_err(|e| AwsError {
                            operation: "PutItem",
                            code: None,
                            message: e.to_string(),
                            retryable: false,
                        }),
                    // The record changed between the check and now (closed, replaced, or a
                    // store that does not return it): read it.
                    None => match self.get(&record.split_brain).await? {
                        Some(existing) => Ok(Recorded::Existing(Box::new(existing))),
                        None => Err(AwsError {
                            operation: "PutItem",
                            code: Some("ConditionalCheckFailedException".to_owned()),
                            message: "the condition failed but no record is there".to_owned(),
                            retryable: true,
                        }),
                    },
                }
            }
            Err(err) => Err(AwsError::from_sdk("PutItem", err)),
        }
    }

    /// The record of `split_brain`, read consistently.
    pub async fn get(&self, split_brain: &str) -> Result<Option<DecisionRecord>, AwsError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(split_brain.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetItem", e))?;
        output
            .item()
            .map(from_item)
            .transpose()
            .map_err(|e| malformed("GetItem", e))
    }

    /// Creates the table (on-demand, keyed by [`KEY_ATTRIBUTE`]) unless it exists, and waits
    /// until it is active: for sandboxes and tests. A deployment's table is deploy's, with its
    /// point-in-time recovery, tags and deletion protection.
    pub async fn ensure_table(&self) -> Result<(), AwsError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TableStatus,
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| AwsError {
            operation: "CreateTable",
            code: None,
            message: e.to_string(),
            retryable: false,
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(SdkError::ServiceError(context))
                if context.err().is_resource_in_use_exception() => {}
            Err(err) => return Err(AwsError::from_sdk("CreateTable", err)),
        }
        for _ in 0..100 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeTable", e))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(AwsError {
            operation: "DescribeTable",
            code: None,
            message: format!("table {} is not active after 10 s", self.table),
            retryable: true,
        })
    }

    /// Every record, closed ones included (the table holds one per pair of sites).
    pub async fn list(&self) -> Result<Vec<DecisionRecord>, AwsError> {
        let mut records = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("Scan", e))?;
            for item in page.items() {
                records.push(from_item(item).map_err(|e| malformed("Scan", e))?);
            }
        }
        Ok(records)
    }

    /// Every item of the table, each read on its own: a malformed item is reported in its
    /// place and does not hide the others (what `site history` lists). Paginated.
    pub async fn entries(&self) -> Result<Vec<Result<Entry, MalformedRecord>>, AwsError> {
        let mut entries = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("Scan", e))?;
            for item in page.items() {
                entries.push(from_item(item).and_then(|record| {
                    Ok(Entry {
                        completion: completion_from_item(item, &record.split_brain)?,
                        record,
                    })
                }));
            }
        }
        Ok(entries)
    }

    /// Adds `completion` to the decision `decision_id` of `split_brain`: the first completion
    /// keeps its time and steps, every one adds its reporters. `false` when that decision is
    /// not the record any more (replaced since). The record's own attributes are untouched, so
    /// this can never change what the fence decided.
    pub async fn complete(
        &self,
        split_brain: &str,
        decision_id: &str,
        completion: &Completion,
    ) -> Result<bool, AwsError> {
        let reporters: Vec<String> = completion
            .reporters
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        let mut update = format!(
            "SET {COMPLETED_AT} = if_not_exists({COMPLETED_AT}, :at), {STEPS} = if_not_exists({STEPS}, :steps)"
        );
        // A string set cannot be empty: without a reporter there is nothing to add.
        if !reporters.is_empty() {
            update.push_str(&format!(" ADD {REPORTERS} :reporters"));
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(split_brain.to_owned()))
            .update_expression(update)
            .condition_expression("decision_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(decision_id.to_owned()))
            .expression_attribute_values(":at", n(completion.completed_at_ms))
            .expression_attribute_values(
                ":steps",
                AttributeValue::L(completion.steps.iter().map(s).collect()),
            );
        let request = if reporters.is_empty() {
            request
        } else {
            request.expression_attribute_values(":reporters", AttributeValue::Ss(reporters))
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(context))
                if context.err().is_conditional_check_failed_exception() =>
            {
                Ok(false)
            }
            Err(err) => Err(AwsError::from_sdk("UpdateItem", err)),
        }
    }

    /// Closes the decision `decision_id` of `split_brain`. `false` when it is not the standing
    /// record any more (closed already, or replaced).
    pub async fn close(
        &self,
        split_brain: &str,
        decision_id: &str,
        closure: &Closure,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(split_brain.to_owned()))
            .update_expression("SET #state = :closed, closed_at_ms = :at, closed_by = :by")
            .condition_expression("decision_id = :id AND #state = :open")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":closed", AttributeValue::S(CLOSED.to_owned()))
            .expression_attribute_values(":open", AttributeValue::S(OPEN.to_owned()))
            .expression_attribute_values(":at", AttributeValue::N(closure.at_ms.to_string()))
            .expression_attribute_values(":by", AttributeValue::S(closure.by.clone()))
            .expression_attribute_values(":id", AttributeValue::S(decision_id.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(context))
                if context.err().is_conditional_check_failed_exception() =>
            {
                Ok(false)
            }
            Err(err) => Err(AwsError::from_sdk("UpdateItem", err)),
        }
    }
}

fn malformed(operation: &'static str, err: MalformedRecord) -> AwsError {
    AwsError {
        operation,
        code: None,
        message: err.to_string(),
        retryable: false,
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The item of a record: one attribute per field, `facts` as JSON text, and `state`
/// (`open`/`closed`) for the conditions.
pub(crate) fn to_item(record: &DecisionRecord) -> Item {
    let mode = record.mode.as_str();
    let mut item = Item::from([
        (KEY_ATTRIBUTE.to_owned(), s(&record.split_brain)),
        ("decision_id".to_owned(), s(&record.decision_id)),
        ("survivor".to_owned(), s(record.survivor.as_str())),
        ("loser".to_owned(), s(record.loser.as_str())),
        ("rule".to_owned(), s(&record.rule)),
        ("reporter".to_owned(), s(record.reporter.as_str())),
        ("decided_at_ms".to_owned(), n(record.decided_at_ms)),
        ("request_id".to_owned(), s(&record.request_id)),
        ("facts".to_owned(), s(record.facts.to_string())),
        ("mode".to_owned(), s(mode)),
        (
            STATE.to_owned(),
            s(if record.closed.is_some() {
                CLOSED
            } else {
                OPEN
            }),
        ),
    ]);
    if let Some(closure) = &record.closed {
        item.insert("closed_at_ms".to_owned(), n(closure.at_ms));
        item.insert("closed_by".to_owned(), s(&closure.by));
    }
    item
}

/// The completion an item holds: `None` before any report completed the fence (or when the
/// update that records it failed); malformed when present but unreadable.
pub(crate) fn completion_from_item(
    item: &Item,
    key: &str,
) -> Result<Option<Completion>, MalformedRecord> {
    let Some(at) = item.get(COMPLETED_AT) else {
        return Ok(None);
    };
    let bad = |reason: String| MalformedRecord {
        key: key.to_owned(),
        reason,
    };
    let completed_at_ms = at
        .as_n()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad(format!("`{COMPLETED_AT}` is not a number")))?;
    let steps = match item.get(STEPS) {
        None => Vec::new(),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| {
                v.as_s()
                    .cloned()
                    .map_err(|_| bad(format!("`{STEPS}` holds a non-string")))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(format!("`{STEPS}` is not a list"))),
    };
    let reporters = match item.get(REPORTERS) {
        None => BTreeSet::new(),
        Some(AttributeValue::Ss(sites)) => sites
            .iter()
            .map(|site| SiteName::parse(site).map_err(|e| bad(format!("`{REPORTERS}`: {e}"))))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(format!("`{REPORTERS}` is not a string set"))),
    };
    Ok(Some(Completion {
        completed_at_ms,
        steps,
        reporters,
    }))
}

pub(crate) fn from_item(item: &Item) -> Result<DecisionRecord, MalformedRecord> {
    let key = item
        .get(KEY_ATTRIBUTE)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let bad = |reason: String| MalformedRecord {
        key: key.clone(),
        reason,
    };
    let text = |name: &str| -> Result<String, MalformedRecord> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| bad(format!("no string attribute `{name}`")))
    };
    let number = |name: &str| -> Result<u64, MalformedRecord> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad(format!("no number attribute `{name}`")))
    };
    let site = |name: &str| -> Result<SiteName, MalformedRecord> {
        SiteName::parse(&text(name)?).map_err(|e| bad(format!("`{name}`: {e}")))
    };
    let closed = match text(STATE)?.as_str() {
        OPEN => None,
        CLOSED => Some(Closure {
            at_ms: number("closed_at_ms")?,
            by: text("closed_by")?,
        }),
        other => return Err(bad(format!("unknown state `{other}`"))),
    };
    Ok(DecisionRecord {
        split_brain: text(KEY_ATTRIBUTE)?,
        decision_id: text("decision_id")?,
        survivor: site("survivor")?,
        loser: site("loser")?,
        rule: text("rule")?,
        reporter: site("reporter")?,
        decided_at_ms: number("decided_at_ms")?,
        request_id: text("request_id")?,
        facts: serde_json::from_str(&text("facts")?).map_err(|e| bad(format!("`facts`: {e}")))?,
        mode: match text("mode")?.as_str() {
            "monitor" => Mode::Monitor,
            _ => Mode::Enforce,
        },
        closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_its_item() {
        let record = DecisionRecord {
            split_brain: "acc/site-a+site-b".into(),
            decision_id: "req-1".into(),
            survivor: SiteName::parse("site-a").unwrap(),
            loser: SiteName::parse("site-b").unwrap(),
            rule: "reporter_preferred".into(),
            reporter: SiteName::parse("site-a").unwrap(),
            decided_at_ms: 42,
            request_id: "req-1".into(),
            facts: serde_json::json!({"probe": "alive"}),
            mode: Mode::Monitor,
            closed: Some(Closure {
                at_ms: 43,
                by: "site bring-online".into(),
            }),
        };
        assert_eq!(from_item(&to_item(&record)).as_ref(), Ok(&record));
        let mut broken = to_item(&DecisionRecord {
            closed: None,
            ..record
        });
        broken.remove("loser");
        assert!(from_item(&broken).unwrap_err().reason.contains("loser"));
    }

    #[test]
    fn a_completion_is_read_when_there_and_malformed_when_wrong() {
        let mut item = Item::from([(KEY_ATTRIBUTE.to_owned(), s("k"))]);
        assert_eq!(completion_from_item(&item, "k"), Ok(None));
        item.insert(COMPLETED_AT.to_owned(), n(7));
        item.insert(
            STEPS.to_owned(),
            AttributeValue::L(vec![s("removed 1 endpoint(s)")]),
        );
        item.insert(
            REPORTERS.to_owned(),
            AttributeValue::Ss(vec!["site-a".into(), "site-b".into()]),
        );
        let completion = completion_from_item(&item, "k");
        assert_eq!(
            completion.as_ref().map(|c| c.as_ref().map(|c| (
                c.completed_at_ms,
                c.steps.len(),
                c.reporters.len()
            ))),
            Ok(Some((7, 1, 2)))
        );
        item.insert(REPORTERS.to_owned(), s("site-a"));
        assert!(completion_from_item(&item, "k").is_err());
    }
}
