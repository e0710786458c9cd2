//! `deploy --emit cloudformation FILE`: the desired state the SDK deploy applies
//! ([`super::plan::desired`]), written as plain CloudFormation for teams whose change process
//! reviews and scans a template rather than running an imperative deploy.
//!
//! One owner for both directions: each resource's CloudFormation properties are made from the
//! same attributes `diff` compares ([`Resource::attributes`]), and [`attributes`] reads a
//! template back into those attributes, so that a test can hold a template against what the
//! SDK deploy left in AWS, attribute by attribute.
//!
//! A stack lives in one region. The Route 53 health-check alarms, their topic and the
//! function's subscription must be in us-east-1 (where Route 53 publishes its metrics), so a
//! deployment in another region gets two templates: the functions' region's, and
//! `<FILE stem>.<region>.json` for the other. Names and ARNs are literal (deploy reads the
//! account and the accelerator's ARN first, as it does before any change), and `DependsOn`
//! orders what a name alone would not.
//!
//! What the SDK deploy does that a template does not, and the reverse, is listed in README
//! ("A CloudFormation template instead").

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::plan::{
    self, Attributes, DECISION_TABLE_KEY, Function, Key, OWNER_TAG, RULE_TARGET_ID, Resource,
};
use crate::config::Deployment;

/// The template's parameter naming the S3 bucket of the ZIPs.
pub const CODE_BUCKET: &str = "CodeBucket";
/// The parameters of the secrets' values, by secret: never in the template itself.
const WEBHOOK_PASSWORD: &str = "WebhookPassword";
const INFINISPAN_PASSWORD: &str = "InfinispanPassword";

/// One template per region, the functions' region first.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    pub templates: Vec<(String, Value)>,
}

/// The parameter naming a function's ZIP in the bucket.
fn code_key_parameter(function: Function) -> String {
    format!("CodeKey{}", camel(function.crate_name()))
}

/// `kind` + `name` as a CloudFormation logical id (alphanumerics only, unique per key).
pub fn logical_id(key: &Key) -> String {
    let id = format!("{}{}", camel(key.kind), camel(&key.name));
    id.chars().take(255).collect()
}

fn camel(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn tags(owner: &str) -> Value {
    json!([{"Key": OWNER_TAG, "Value": owner}])
}

fn number(attributes: &Attributes, key: &str) -> anyhow::Result<i64> {
    attributes
        .get(key)
        .with_context(|| format!("no {key}"))?
        .parse()
        .with_context(|| format!("{key} is not a number"))
}

fn text<'a>(attributes: &'a Attributes, key: &str) -> anyhow::Result<&'a str> {
    attributes
        .get(key)
        .map(String::as_str)
        .with_context(|| format!("no {key}"))
}

fn parsed(attributes: &Attributes, key: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text(attributes, key)?).with_context(|| format!("{key} is not JSON"))
}

/// Which region's template a resource goes in.
fn region_of<'a>(resource: &'a Resource, deployment: &'a Deployment) -> &'a str {
    match resource {
        Resource::Topic { region, .. }
        | Resource::Alarm { region, .. }
        | Resource::FunctionAlarm { region, .. }
        | Resource::Subscription { region, .. } => region,
        _ => &deployment.region,
    }
}

/// The templates of `desired` (what [`plan::desired`] returns for the deployment).
pub fn templates(deployment: &Deployment, desired: &[Resource]) -> anyhow::Result<Templates> {
    let owner = deployment.name.as_str();
    let mut by_region: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut functions_region = Map::new();
    // Merged into other resources: a function's reserved concurrency, a rule's target.
    let reserved: BTreeMap<&str, i32> = desired
        .iter()
        .filter_map(|r| match r {
            Resource::ReservedConcurrency { function, value } => Some((function.as_str(), *value)),
            _ => None,
        })
        .collect();
    let targets: BTreeMap<&str, &str> = desired
        .iter()
        .filter_map(|r| match r {
            Resource::RuleTarget { rule, function_arn } => {
                Some((rule.as_str(), function_arn.as_str()))
            }
            _ => None,
        })
        .collect();
    for resource in desired {
        let Some(body) = cfn_resource(resource, owner, &reserved, &targets, desired)
            .with_context(|| format!("{}", resource.key()))?
        else {
            continue;
        };
        let region = region_of(resource, deployment);
        let resources = if region == deployment.region {
            &mut functions_region
        } else {
            by_region.entry(region.to_owned()).or_default()
        };
        resources.insert(logical_id(&resource.key()), body);
    }
    let mut templates = vec![(
        deployment.region.clone(),
        template(deployment, functions_region, true),
    )];
    for (region, resources) in by_region {
        templates.push((region.clone(), template(deployment, resources, false)));
    }
    Ok(Templates { templates })
}

/// A template around `resources`: the parameters it uses and its outputs.
fn template(deployment: &Deployment, resources: Map<String, Value>, functions: bool) -> Value {
    let mut parameters = Map::new();
    let uses = |needle: &str| {
        resources
            .values()
            .any(|r| r.to_string().contains(&format!("\"Ref\":\"{needle}\"")))
    };
    if uses(CODE_BUCKET) {
        parameters.insert(
            CODE_BUCKET.to_owned(),
            json!({"Type": "String", "Description": "S3 bucket holding <function>/bootstrap.zip (`cargo xtask build` or the release's ZIPs), in the functions' region"}),
        );
    }
    for function in Function::ALL {
        let name = code_key_parameter(function);
        if uses(&name) {
            parameters.insert(
                name,
                json!({
                    "Type": "String",
                    "Default": format!("{}/bootstrap.zip", function.crate_name()),
                    "Description": format!("S3 key of {}'s ZIP", function.crate_name()),
                }),
            );
        }
    }
    for (name, what) in [
        (
            WEBHOOK_PASSWORD,
            "the webhook password Alertmanager sends (HTTP Basic)",
        ),
        (
            INFINISPAN_PASSWORD,
            "the Infinispan password of the fence's user",
        ),
    ] {
        if uses(name) {
            parameters.insert(
                name.to_owned(),
                json!({"Type": "String", "NoEcho": true, "MinLength": 1, "Description": what}),
            );
        }
    }
    let mut outputs = Map::new();
    let fence = Function::Fence.name(deployment);
    let url = logical_id(&Resource::FunctionUrl { function: fence }.key());
    if resources.contains_key(&url) {
        outputs.insert(
            "FenceFunctionUrl".to_owned(),
            json!({"Description": "The fence's Function URL: Alertmanager's webhook", "Value": {"Fn::GetAtt": [url, "FunctionUrl"]}}),
        );
    }
    for (id, resource) in &resources {
        if resource["Type"] == "AWS::SNS::Topic" {
            outputs.insert(
                format!("{id}Arn"),
                json!({"Description": format!("The topic {}", resource["Properties"]["TopicName"].as_str().unwrap_or_default()), "Value": {"Ref": id}}),
            );
        }
    }
    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "sitefence deployment `{}`{}: the desired state of `sitefence deploy`, as plain CloudFormation",
            deployment.name,
            if functions { "" } else { " (the resources that must live in this region)" }
        ),
        "Resources": resources,
    });
    if !parameters.is_empty() {
        template["Parameters"] = Value::Object(parameters);
    }
    if !outputs.is_empty() {
        template["Outputs"] = Value::Object(outputs);
    }
    template
}

/// The CloudFormation resource of one desired resource; `None` for those merged into another
/// (reserved concurrency into its function, a rule's target into its rule).
fn cfn_resource(
    resource: &Resource,
    owner: &str,
    reserved: &BTreeMap<&str, i32>,
    targets: &BTreeMap<&str, &str>,
    desired: &[Resource],
) -> anyhow::Result<Option<Value>> {
    let a = resource.attributes(owner);
    let depends = |keys: Vec<Key>| -> Vec<String> {
        keys.into_iter()
            .filter(|k| desired.iter().any(|r| r.key() == *k))
            .map(|k| logical_id(&k))
            .collect()
    };
    let (kind, properties, depends_on): (&str, Value, Vec<String>) = match resource {
        Resource::Secret { name } => {
            let parameter = if name.contains("infinispan") {
                INFINISPAN_PASSWORD
            } else {
                WEBHOOK_PASSWORD
            };
            (
                "AWS::SecretsManager::Secret",
                json!({"Name": name, "SecretString": {"Ref": parameter}, "Tags": tags(owner)}),
                vec![],
            )
        }
        Resource::DecisionTable { name } => {
            let key = DECISION_TABLE_KEY;
            (
                "AWS::DynamoDB::Table",
                json!({
                    "TableName": name,
                    "AttributeDefinitions": [{"AttributeName": key.attribute, "AttributeType": key.attribute_type}],
                    "KeySchema": [{"AttributeName": key.attribute, "KeyType": key.key_type}],
                    "BillingMode": text(&a, "billing_mode")?,
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": text(&a, "point_in_time_recovery")? == plan::POINT_IN_TIME_RECOVERY_ENABLED},
                    "DeletionProtectionEnabled": text(&a, "deletion_protection")? == "true",
                    "Tags": tags(owner),
                }),
                vec![],
            )
        }
        Resource::Role { name } => (
            "AWS::IAM::Role",
            json!({
                "RoleName": name,
                "Path": plan::ROLE_PATH,
                "AssumeRolePolicyDocument": parsed(&a, "trust_policy")?,
                "Tags": tags(owner),
            }),
            vec![],
        ),
        Resource::RolePolicy { role, .. } => (
            "AWS::IAM::RolePolicy",
            json!({"RoleName": role, "PolicyName": role, "PolicyDocument": parsed(&a, "document")?}),
            depends(vec![Resource::Role { name: role.clone() }.key()]),
        ),
        Resource::Function { function, name, .. } => {
            let mut properties = json!({
                "FunctionName": name,
                "Role": text(&a, "role")?,
                "Runtime": text(&a, "runtime")?,
                "Handler": text(&a, "handler")?,
                "Architectures": [text(&a, "architecture")?],
                "Timeout": number(&a, "timeout")?,
                "MemorySize": number(&a, "memory")?,
                "Environment": {"Variables": parsed(&a, "environment")?},
                "Code": {"S3Bucket": {"Ref": CODE_BUCKET}, "S3Key": {"Ref": code_key_parameter(*function)}},
                "Tags": tags(owner),
            });
            if let Some(value) = reserved.get(name.as_str()) {
                properties["ReservedConcurrentExecutions"] = json!(value);
            }
            let role = Resource::Role { name: name.clone() }.key();
            let policy = Key {
                kind: "iam inline policy",
                name: name.clone(),
            };
            let log_group = Key {
                kind: "log group",
                name: format!("{}{name}", plan::LOG_GROUP_PREFIX),
            };
            (
                "AWS::Lambda::Function",
                properties,
                depends(vec![role, policy, log_group]),
            )
        }
        Resource::ReservedConcurrency { .. } | Resource::RuleTarget { .. } => return Ok(None),
        Resource::FunctionUrl { function } => (
            "AWS::Lambda::Url",
            json!({"TargetFunctionArn": function, "AuthType": text(&a, "auth_type")?}),
            depends(vec![function_key(function)]),
        ),
        Resource::Permission {
            function,
            condition,
            ..
        } => {
            let mut properties = json!({
                "FunctionName": function,
                "Action": text(&a, "action")?,
                "Principal": text(&a, "principal")?,
            });
            match condition {
                plan::PermissionCondition::SourceArn(arn) => properties["SourceArn"] = json!(arn),
                plan::PermissionCondition::FunctionUrlAuthNone => {
                    properties["FunctionUrlAuthType"] = json!("NONE")
                }
                plan::PermissionCondition::InvokedViaFunctionUrl => {
                    properties["InvokedViaFunctionUrl"] = json!(true)
                }
            }
            (
                "AWS::Lambda::Permission",
                properties,
                depends(vec![function_key(function)]),
            )
        }
        Resource::Topic { name, .. } => (
            "AWS::SNS::Topic",
            json!({"TopicName": name, "Tags": tags(owner)}),
            vec![],
        ),
        Resource::LogGroup { name, .. } => (
            "AWS::Logs::LogGroup",
            json!({"LogGroupName": name, "RetentionInDays": number(&a, "retention_days")?, "Tags": tags(owner)}),
            vec![],
        ),
        Resource::FunctionAlarm {
            name,
            region,
            function,
            watch,
            topic_arn,
        } => (
            "AWS::CloudWatch::Alarm",
            alarm_properties(name, &watch.description(function), &a, owner)?,
            depends(vec![topic_key(topic_arn, region), function_key(function)]),
        ),
        Resource::Alarm {
            name,
            region,
            health_check_id,
            topic_arn,
        } => (
            "AWS::CloudWatch::Alarm",
            alarm_properties(
                name,
                &format!("Route 53 health check {health_check_id} failed: fail over"),
                &a,
                owner,
            )?,
            depends(vec![topic_key(topic_arn, region)]),
        ),
        Resource::Subscription {
            topic_arn,
            region,
            function_arn,
            ..
        } => (
            "AWS::SNS::Subscription",
            json!({"TopicArn": topic_arn, "Protocol": "lambda", "Endpoint": function_arn}),
            depends(vec![topic_key(topic_arn, region)]),
        ),
        Resource::Rule { name, .. } => {
            let mut properties = json!({
                "Name": name,
                "EventPattern": parsed(&a, "pattern")?,
                "State": text(&a, "state")?,
                "Tags": tags(owner),
            });
            if let Some(arn) = targets.get(name.as_str()) {
                properties["Targets"] = json!([{"Id": RULE_TARGET_ID, "Arn": arn}]);
            }
            let functions: Vec<Key> = desired
                .iter()
                .filter_map(|r| match r {
                    Resource::Function { name: f, .. }
                        if targets
                            .get(name.as_str())
                            .is_some_and(|arn| plan::last_segment(arn) == f) =>
                    {
                        Some(r.key())
                    }
                    _ => None,
                })
                .collect();
            ("AWS::Events::Rule", properties, depends(functions))
        }
        Resource::FailureDestination {
            function,
            destination_arn,
        } => (
            "AWS::Lambda::EventInvokeConfig",
            json!({
                "FunctionName": function,
                "Qualifier": "$LATEST",
                "MaximumRetryAttempts": number(&a, "max_retries")?,
                "MaximumEventAgeInSeconds": number(&a, "max_event_age")?,
                "DestinationConfig": {"OnFailure": {"Destination": destination_arn}},
            }),
            depends(vec![
                function_key(function),
                topic_key(destination_arn, region_of_arn(destination_arn)),
            ]),
        ),
    };
    let mut body = json!({"Type": kind, "Properties": properties});
    let skips = checkov_skips(resource);
    if !skips.is_empty() {
        let skips: Vec<Value> = skips
            .iter()
            .map(|(id, comment)| json!({"id": id, "comment": comment}))
            .collect();
        body["Metadata"] = json!({"checkov": {"skip": skips}});
    }
    if !depends_on.is_empty() {
        body["DependsOn"] = json!(depends_on);
    }
    if kind == "AWS::DynamoDB::Table" {
        // The records outlive a stack deleted by mistake, as deletion protection intends.
        body["DeletionPolicy"] = json!("Retain");
        body["UpdateReplacePolicy"] = json!("Retain");
    }
    Ok(Some(body))
}

/// The checkov findings sitefence does not follow, each with its reason, written into the
/// resource's `Metadata` where the scanner (and a reviewer) reads it. Everything else checkov
/// asks for is done, where it costs nothing at run time.
fn checkov_skips(resource: &Resource) -> Vec<(&'static str, &'static str)> {
    const NO_CMK: &str = "encrypted at rest with the AWS managed key; a customer managed key costs per month and per request and adds a key policy to keep right, for data that holds no secret";
    match resource {
        Resource::FunctionUrl { .. } => vec![(
            "CKV_AWS_258",
            "by design: Alertmanager cannot sign requests (SigV4), so the URL's auth is NONE and the fence checks HTTP Basic credentials from Secrets Manager in code, answering 401 before reading anything else",
        )],
        Resource::Function { function, .. } => {
            let mut skips = vec![
                (
                    "CKV_AWS_117",
                    "the functions call public AWS APIs and both sites' Infinispan routes; in a VPC they would need NAT or endpoints per service, and the fence must still reach the surviving site when one region's network is what failed",
                ),
                (
                    "CKV_AWS_173",
                    "the environment holds names, URLs and the CA bundle, never a secret (the passwords are read from Secrets Manager); Lambda encrypts it at rest with the AWS managed key",
                ),
            ];
            match function {
                Function::Fence => skips.push((
                    "CKV_AWS_116",
                    "invoked synchronously through its Function URL: Lambda keeps no event to dead-letter, and Alertmanager resends a failed webhook itself",
                )),
                Function::Route53 | Function::Vpc => skips.push((
                    "CKV_AWS_116",
                    "an event that still fails after Lambda's retries goes to the alarm topic through an on-failure destination (the AWS::Lambda::EventInvokeConfig beside it), which AWS recommends over a dead-letter queue and which carries the error with the event; this check looks at DeadLetterConfig only",
                )),
            }
            match function {
                Function::Fence => {}
                Function::Route53 | Function::Vpc => skips.push((
                    "CKV_AWS_115",
                    "invoked asynchronously (SNS, EventBridge) once per incident, and Lambda retries a throttled asynchronous event for hours; a reservation would take from the unreserved concurrency deploy checks the account for",
                )),
            }
            skips
        }
        Resource::DecisionTable { .. } => vec![("CKV_AWS_119", NO_CMK)],
        Resource::LogGroup { .. } => vec![(
            "CKV_AWS_158",
            "the functions log no secret (the decision record is checked for that at every log level); CloudWatch Logs encrypts at rest, and a customer managed key costs per month and per request",
        )],
        Resource::Secret { .. } => vec![("CKV_AWS_149", NO_CMK)],
        Resource::Topic { .. } => vec![(
            "CKV_AWS_26",
            "CloudWatch alarms publish to this topic, and they cannot publish to a topic encrypted with the AWS managed key (aws/sns); a customer managed key costs per month and per request for notifications that hold no secret",
        )],
        _ => Vec::new(),
    }
}

/// The region field of an ARN (`arn:partition:service:region:…`).
fn region_of_arn(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
}

fn function_key(name: &str) -> Key {
    Key {
        kind: "lambda function",
        name: name.to_owned(),
    }
}

fn topic_key(topic_arn: &str, region: &str) -> Key {
    Key {
        kind: "sns topic",
        name: format!("{region}/{}", plan::last_segment(topic_arn)),
    }
}

/// An alarm's settings (the attributes `observe::read_alarm` reads) and the CloudFormation
/// property each is, in one table: [`alarm_properties`] and [`attributes`] both read it.
const ALARM_PROPERTIES: [(&str, &str); 9] = [
    ("namespace", "Namespace"),
    ("metric", "MetricName"),
    ("statistic", "Statistic"),
    ("period", "Period"),
    ("evaluation_periods", "EvaluationPeriods"),
    ("threshold", "Threshold"),
    ("comparison", "ComparisonOperator"),
    ("treat_missing_data", "TreatMissingData"),
    ("alarm_actions", "AlarmActions"),
];
const NUMERIC_ALARM_PROPERTIES: [&str; 3] = ["Period", "EvaluationPeriods", "Threshold"];

fn alarm_properties(
    name: &str,
    description: &str,
    a: &Attributes,
    owner: &str,
) -> anyhow::Result<Value> {
    let mut properties =
        json!({"AlarmName": name, "AlarmDescription": description, "Tags": tags(owner)});
    for (attribute, property) in ALARM_PROPERTIES {
        let value = text(a, attribute)?;
        properties[property] = if property == "AlarmActions" {
            json!([value])
        } else if NUMERIC_ALARM_PROPERTIES.contains(&property) {
            json!(
                value
                    .parse::<f64>()
                    .with_context(|| attribute.to_string())? as i64
            )
        } else {
            json!(value)
        };
    }
    let dimension = text(a, "dimension")?;
    let (dimension_name, dimension_value) = dimension
        .split_once('=')
        .with_context(|| format!("dimension `{dimension}`"))?;
    properties["Dimensions"] = json!([{"Name": dimension_name, "Value": dimension_value}]);
    Ok(properties)
}

/// Reads templates back into the attributes `diff` compares, per resource key: what a stack
/// made from them would hold. The functions' code is not among them (the template names a
/// bucket and key, not a hash).
pub fn attributes(templates: &Templates) -> anyhow::Result<BTreeMap<Key, Attributes>> {
    let mut found = BTreeMap::new();
    for (region, template) in &templates.templates {
        let resources = template["Resources"]
            .as_object()
            .context("a template without Resources")?;
        for (id, resource) in resources {
            let p = &resource["Properties"];
            let s = |name: &str| p[name].as_str().unwrap_or_default().to_owned();
            let owner = p["Tags"]
                .as_array()
                .and_then(|tags| tags.iter().find(|t| t["Key"] == OWNER_TAG))
                .and_then(|t| t["Value"].as_str())
                .map(str::to_owned);
            let mut a = Attributes::new();
            if let Some(owner) = &owner {
                a.insert("owner".into(), owner.clone());
            }
            let kind = resource["Type"].as_str().unwrap_or_default();
            let key = match kind {
                "AWS::SecretsManager::Secret" => {
                    // Compared by existence only, like the SDK deploy's.
                    a.clear();
                    ("secret", s("Name"))
                }
                "AWS::DynamoDB::Table" => {
                    let schema = p["KeySchema"].as_array().cloned().unwrap_or_default();
                    let types = p["AttributeDefinitions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let columns = schema.iter().map(|k| {
                        let name = k["AttributeName"].as_str().unwrap_or_default();
                        let attribute_type = types
                            .iter()
                            .find(|t| t["AttributeName"] == name)
                            .and_then(|t| t["AttributeType"].as_str())
                            .unwrap_or_default();
                        (
                            name,
                            k["KeyType"].as_str().unwrap_or_default(),
                            attribute_type,
                        )
                    });
                    a.insert("key_schema".into(), plan::key_schema_text(columns));
                    a.insert("billing_mode".into(), s("BillingMode"));
                    let pitr = p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
                        == json!(true);
                    a.insert(
                        "point_in_time_recovery".into(),
                        if pitr {
                            plan::POINT_IN_TIME_RECOVERY_ENABLED
                        } else {
                            "DISABLED"
                        }
                        .into(),
                    );
                    a.insert(
                        "deletion_protection".into(),
                        (p["DeletionProtectionEnabled"] == json!(true)).to_string(),
                    );
                    ("dynamodb table", s("TableName"))
                }
                "AWS::IAM::Role" => {
                    a.insert(
                        "trust_policy".into(),
                        plan::canonical(&p["AssumeRolePolicyDocument"]),
                    );
                    ("iam role", s("RoleName"))
                }
                "AWS::IAM::RolePolicy" => {
                    a.insert("document".into(), plan::canonical(&p["PolicyDocument"]));
                    ("iam inline policy", s("RoleName"))
                }
                "AWS::Lambda::Function" => {
                    let name = s("FunctionName");
                    for (attribute, property) in [
                        ("runtime", "Runtime"),
                        ("handler", "Handler"),
                        ("role", "Role"),
                    ] {
                        a.insert(attribute.into(), s(property));
                    }
                    a.insert(
                        "architecture".into(),
                        p["Architectures"][0].as_str().unwrap_or_default().into(),
                    );
                    a.insert("timeout".into(), p["Timeout"].to_string());
                    a.insert("memory".into(), p["MemorySize"].to_string());
                    let variables: BTreeMap<String, String> =
                        serde_json::from_value(p["Environment"]["Variables"].clone())
                            .unwrap_or_default();
                    a.insert("environment".into(), json!(variables).to_string());
                    if let Some(value) = p.get("ReservedConcurrentExecutions") {
                        let mut reserved = Attributes::new();
                        reserved.insert("reserved".into(), value.to_string());
                        found.insert(
                            Key {
                                kind: "lambda reserved concurrency",
                                name: name.clone(),
                            },
                            reserved,
                        );
                    }
                    ("lambda function", name)
                }
                "AWS::Lambda::Url" => {
                    a.insert("auth_type".into(), s("AuthType"));
                    ("lambda function url", s("TargetFunctionArn"))
                }
                "AWS::Lambda::Permission" => {
                    a.insert("action".into(), s("Action"));
                    a.insert("principal".into(), s("Principal"));
                    let statement = if p.get("SourceArn").is_some() {
                        a.insert("source_arn".into(), s("SourceArn"));
                        if s("Principal") == "sns.amazonaws.com" {
                            plan::SNS_STATEMENT
                        } else {
                            plan::EVENTS_STATEMENT
                        }
                    } else if p.get("FunctionUrlAuthType").is_some() {
                        a.insert("function_url_auth_type".into(), s("FunctionUrlAuthType"));
                        plan::FUNCTION_URL_STATEMENT
                    } else {
                        a.insert(
                            "invoked_via_function_url".into(),
                            p["InvokedViaFunctionUrl"].to_string(),
                        );
                        plan::FUNCTION_URL_INVOKE_STATEMENT
                    };
                    (
                        "lambda permission",
                        format!("{}/{statement}", s("FunctionName")),
                    )
                }
                "AWS::SNS::Topic" => ("sns topic", format!("{region}/{}", s("TopicName"))),
                "AWS::Logs::LogGroup" => {
                    a.insert("retention_days".into(), p["RetentionInDays"].to_string());
                    ("log group", s("LogGroupName"))
                }
                "AWS::CloudWatch::Alarm" => {
                    for (attribute, property) in ALARM_PROPERTIES {
                        let value = match &p[property] {
                            Value::Array(actions) => actions
                                .iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(","),
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        a.insert(attribute.into(), value);
                    }
                    let dimension = &p["Dimensions"][0];
                    a.insert(
                        "dimension".into(),
                        format!(
                            "{}={}",
                            dimension["Name"].as_str().unwrap_or_default(),
                            dimension["Value"].as_str().unwrap_or_default()
                        ),
                    );
                    ("cloudwatch alarm", format!("{region}/{}", s("AlarmName")))
                }
                "AWS::SNS::Subscription" => (
                    "sns subscription",
                    format!(
                        "{} -> {}",
                        plan::last_segment(&s("TopicArn")),
                        plan::last_segment(&s("Endpoint"))
                    ),
                ),
                "AWS::Lambda::EventInvokeConfig" => {
                    a.insert(
                        "on_failure".into(),
                        p["DestinationConfig"]["OnFailure"]["Destination"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                    );
                    a.insert("max_retries".into(), p["MaximumRetryAttempts"].to_string());
                    a.insert(
                        "max_event_age".into(),
                        p["MaximumEventAgeInSeconds"].to_string(),
                    );
                    ("lambda failure destination", s("FunctionName"))
                }
                "AWS::Events::Rule" => {
                    a.insert("pattern".into(), plan::canonical(&p["EventPattern"]));
                    a.insert("state".into(), s("State"));
                    if let Some(target) = p["Targets"].as_array().and_then(|t| t.first()) {
                        let mut t = Attributes::new();
                        t.insert(
                            "arn".into(),
                            target["Arn"].as_str().unwrap_or_default().into(),
                        );
                        found.insert(
                            Key {
                                kind: "eventbridge target",
                                name: format!(
                                    "{}/{}",
                                    s("Name"),
                                    target["Id"].as_str().unwrap_or_default()
                                ),
                            },
                            t,
                        );
                    }
                    ("eventbridge rule", s("Name"))
                }
                other => anyhow::bail!("{id}: a resource of type {other} sitefence does not make"),
            };
            found.insert(
                Key {
                    kind: key.0,
                    name: key.1,
                },
                a,
            );
        }
    }
    Ok(found)
}

/// Where the template of `region` is written, beside `file`: `file` itself for the functions'
/// region, `<stem>.<region>.<extension>` for another.
pub fn path_for(
    file: &std::path::Path,
    region: &str,
    functions_region: &str,
) -> std::path::PathBuf {
    if region == functions_region {
        return file.to_path_buf();
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "template".to_owned());
    let extension = file
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    file.with_file_name(format!("{stem}.{region}{extension}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::plan::tests::{example, inputs};

    #[test]
    fn a_template_reads_back_as_the_desired_state_but_the_code() {
        let deployment = example();
        let desired = plan::desired(&deployment, &inputs()).unwrap();
        let templates = templates(&deployment, &desired).unwrap();
        let read = attributes(&templates).unwrap();
        for resource in &desired {
            let key = resource.key();
            let mut wanted = resource.attributes(&deployment.name);
            wanted.remove("code_sha256");
            let got = read.get(&key);
            assert_eq!(got, Some(&wanted), "{key}");
        }
        assert_eq!(
            read.len(),
            desired.len(),
            "{:?}",
            read.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn route53s_resources_go_in_a_template_of_their_region() {
        let deployment = example();
        let desired = plan::desired(&deployment, &inputs()).unwrap();
        let templates = templates(&deployment, &desired).unwrap();
        let regions: Vec<&str> = templates
            .templates
            .iter()
            .map(|(r, _)| r.as_str())
            .collect();
        assert_eq!(regions, [deployment.region.as_str(), "us-east-1"]);
        let (_, east) = &templates.templates[1];
        let kinds: Vec<&str> = east["Resources"]
            .as_object()
            .unwrap()
            .values()
            .map(|r| r["Type"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"AWS::CloudWatch::Alarm"));
        assert!(!kinds.contains(&"AWS::Lambda::Function"));
        let main = &templates.templates[0].1;
        assert!(main["Parameters"][CODE_BUCKET].is_object());
        assert_eq!(main["Parameters"][WEBHOOK_PASSWORD]["NoEcho"], true);
        assert!(main["Outputs"]["FenceFunctionUrl"].is_object());
        assert_eq!(
            path_for(
                std::path::Path::new("out/sf.json"),
                "us-east-1",
                "eu-west-1"
            ),
            std::path::PathBuf::from("out/sf.us-east-1.json")
        );
    }

    #[test]
    fn both_function_url_statements_are_in_the_template() {
        let deployment = example();
        let desired = plan::desired(&deployment, &inputs()).unwrap();
        let main = &templates(&deployment, &desired).unwrap().templates[0].1;
        let permissions: Vec<&Value> = main["Resources"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["Type"] == "AWS::Lambda::Permission")
            .collect();
        assert!(
            permissions
                .iter()
                .any(|p| p["Properties"]["FunctionUrlAuthType"] == "NONE"
                    && p["Properties"]["Action"] == "lambda:InvokeFunctionUrl")
        );
        assert!(
            permissions
                .iter()
                .any(|p| p["Properties"]["InvokedViaFunctionUrl"] == true
                    && p["Properties"]["Action"] == "lambda:InvokeFunction")
        );
    }
}
