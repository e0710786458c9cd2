//! The IAM documents of the three functions: a trust policy for Lambda and, per function, an
//! inline policy naming exactly the resources it touches (no `*` action, no managed policy).
//! `Resource: "*"` appears only for actions that have no resource-level permissions (the
//! List/Describe calls); `cargo xtask lint` runs parliament on every document generated here.

use crate::config::Deployment;
use serde_json::{Value, json};

/// Where the resources live: account, partition and the regions of the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub partition: String,
    pub account: String,
    /// Region of the functions, secrets, load balancers, rule.
    pub region: String,
    /// ARN of the Global Accelerator the fence changes.
    pub accelerator_arn: String,
}

impl Scope {
    pub fn arn(&self, service: &str, region: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{region}:{}:{resource}",
            self.partition, self.account
        )
    }
}

/// `aws`, `aws-cn` or `aws-us-gov`, from a region name.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The writes the functions make: the policies below grant them and `doctor` checks the
/// deployed roles for them, from this one list.
pub mod writes {
    /// The fence takes the loser out of every endpoint group of its accelerator.
    pub const FENCE_TRAFFIC: [&str; 2] = [
        "globalaccelerator:RemoveEndpoints",
        "globalaccelerator:UpdateEndpointGroup",
    ];
    /// The fence's conditional create of its decision, and the completion it adds afterwards.
    pub const FENCE_RECORD: [&str; 2] = ["dynamodb:PutItem", "dynamodb:UpdateItem"];
    /// Every function tells the deployment's topic what it did.
    pub const NOTIFY: &str = "sns:Publish";
    /// The Route 53 function pins a failed health check.
    pub const PIN_HEALTH_CHECK: &str = "route53:UpdateHealthCheck";
    /// The VPC function moves routes to the standby.
    pub const MOVE_ROUTES: &str = "ec2:ReplaceRoute";
}

/// A Route 53 health check's ARN (a global resource: no region, no account).
pub fn health_check_arn(scope: &Scope, id: &str) -> String {
    format!("arn:{}:route53:::healthcheck/{id}", scope.partition)
}

/// A route table's ARN in the deployment's region.
pub fn route_table_arn(scope: &Scope, id: &str) -> String {
    scope.arn("ec2", &scope.region, &format!("route-table/{id}"))
}

/// A VPC's ARN, as the `ec2:Vpc` condition key holds it.
pub fn vpc_arn(scope: &Scope, vpc_id: &str) -> String {
    scope.arn("ec2", &scope.region, &format!("vpc/{vpc_id}"))
}

pub fn lambda_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

fn document(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn allow(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources})
}

/// Writing its own log group, what `AWSLambdaBasicExecutionRole` grants for every log group.
fn logs(scope: &Scope, function_name: &str) -> Value {
    allow(
        "WriteOwnLogs",
        &[
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ],
        vec![scope.arn(
            "logs",
            &scope.region,
            &format!("log-group:/aws/lambda/{function_name}:*"),
        )],
    )
}

/// `document` with the statement Lambda needs to send a failed asynchronous event to the
/// function's failure destination (it publishes with the function's role).
pub fn with_failure_destination(mut document: Value, topic_arn: &str) -> Value {
    if let Some(statements) = document.get_mut("Statement").and_then(Value::as_array_mut) {
        statements.push(allow(
            "ReportFailedEvents",
            &[writes::NOTIFY],
            vec![topic_arn.to_string()],
        ));
    }
    document
}

fn notify(deployment: &Deployment) -> Option<Value> {
    deployment
        .notify_topic_arn
        .as_ref()
        .map(|topic| allow("NotifyActions", &[writes::NOTIFY], vec![topic.clone()]))
}

/// A secret given by name: Secrets Manager appends `-` and six random characters to its ARN.
fn secret_arn(scope: &Scope, name_or_arn: &str) -> String {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.to_string()
    } else {
        scope.arn(
            "secretsmanager",
            &scope.region,
            &format!("secret:{name_or_arn}-??????"),
        )
    }
}

/// The ARN of a DynamoDB table of the deployment's region.
pub fn table_arn(scope: &Scope, table: &str) -> String {
    scope.arn("dynamodb", &scope.region, &format!("table/{table}"))
}

/// The fence's use of its decision table: the conditional create (`PutItem`), the consistent
/// read after a failed condition (`GetItem`) and the completion it adds to a decision once the
/// fence is complete (`UpdateItem`, which can change nothing `PutItem` could not), on that
/// table alone. No `Scan`: listing and closing records is the operator's (`site` commands).
fn record_decisions(deployment: &Deployment, scope: &Scope) -> Value {
    let [put, update] = writes::FENCE_RECORD;
    allow(
        "RecordDecisions",
        &["dynamodb:GetItem", put, update],
        vec![table_arn(scope, &deployment.decision_table())],
    )
}

pub fn fence_policy(deployment: &Deployment, scope: &Scope, function_name: &str) -> Value {
    let accelerator = &scope.accelerator_arn;
    let mut statements = vec![
        // ListAccelerators has no resource-level permission: finding the accelerator by DNS name
        // needs "*".
        allow(
            "FindAccelerator",
            &["globalaccelerator:ListAccelerators"],
            vec!["*".to_string()],
        ),
        allow(
            "ReadListeners",
            &["globalaccelerator:ListListeners"],
            vec![accelerator.clone()],
        ),
        allow(
            "ReadEndpointGroups",
            &["globalaccelerator:ListEndpointGroups"],
            vec![format!("{accelerator}/listener/*")],
        ),
        // RemoveEndpoints, and UpdateEndpointGroup for a group whose dial it closes instead.
        allow(
            "RemoveOfflineSite",
            &[
                "globalaccelerator:DescribeEndpointGroup",
                writes::FENCE_TRAFFIC[0],
                writes::FENCE_TRAFFIC[1],
            ],
            vec![format!("{accelerator}/listener/*/endpoint-group/*")],
        ),
        // DescribeTags has no resource-level permission either (parliament: "required_format: *").
        allow(
            "ReadSiteTags",
            &["elasticloadbalancing:DescribeTags"],
            vec!["*".to_string()],
        ),
        allow(
            "ReadCredentials",
            &["secretsmanager:GetSecretValue"],
            vec![
                secret_arn(scope, &deployment.fence.webhook_secret),
                secret_arn(scope, &deployment.fence.infinispan_secret),
            ],
        ),
        record_decisions(deployment, scope),
        logs(scope, function_name),
    ];
    statements.extend(notify(deployment));
    document(statements)
}

pub fn route53_policy(
    deployment: &Deployment,
    health_check_ids: &[String],
    scope: &Scope,
    function_name: &str,
) -> Value {
    let health_checks = health_check_ids
        .iter()
        .map(|id| health_check_arn(scope, id))
        .collect();
    let mut statements = vec![
        allow(
            "PinFailedHealthCheck",
            &["route53:GetHealthCheck", writes::PIN_HEALTH_CHECK],
            health_checks,
        ),
        logs(scope, function_name),
    ];
    statements.extend(notify(deployment));
    document(statements)
}

pub fn vpc_policy(
    deployment: &Deployment,
    vpc: &crate::config::Vpc,
    scope: &Scope,
    function_name: &str,
) -> Value {
    let replace = if vpc.route_table_ids.is_empty() {
        // Every route table of the appliances' VPC, and only of that VPC.
        json!({
            "Sid": "MoveRoutesToStandby",
            "Effect": "Allow",
            "Action": [writes::MOVE_ROUTES],
            "Resource": [route_table_arn(scope, "*")],
            "Condition": {"ArnEquals": {"ec2:Vpc": vpc_arn(scope, &vpc.vpc_id)}}
        })
    } else {
        allow(
            "MoveRoutesToStandby",
            &[writes::MOVE_ROUTES],
            vpc.route_table_ids
                .iter()
                .map(|id| route_table_arn(scope, id))
                .collect(),
        )
    };
    let mut statements = vec![
        // EC2's Describe calls have no resource-level permissions.
        allow(
            "ReadRoutesAndAppliances",
            &[
                "ec2:DescribeRouteTables",
                "ec2:DescribeInstances",
                "ec2:DescribeNetworkInterfaces",
            ],
            vec!["*".to_string()],
        ),
        replace,
        logs(scope, function_name),
    ];
    statements.extend(notify(deployment));
    document(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Deployment {
        Deployment::load(&crate::example_config()).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn scope() -> Scope {
        Scope {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            accelerator_arn: "arn:aws:globalaccelerator::123456789012:accelerator/1234abcd-abcd-1234-abcd-1234abcdefgh".into(),
        }
    }

    fn every_document() -> Vec<Value> {
        let deployment = example();
        let vpc = deployment
            .vpc
            .clone()
            .unwrap_or_else(|| panic!("example has [vpc]"));
        vec![
            fence_policy(&deployment, &scope(), "f"),
            route53_policy(&deployment, &["233e180f".to_string()], &scope(), "r"),
            vpc_policy(&deployment, &vpc, &scope(), "v"),
        ]
    }

    #[test]
    fn no_action_is_a_wildcard() {
        for document in every_document() {
            for statement in document["Statement"].as_array().into_iter().flatten() {
                for action in statement["Action"].as_array().into_iter().flatten() {
                    let action = action.as_str().unwrap_or_default();
                    assert!(!action.contains('*'), "{action} in {document}");
                }
            }
        }
    }

    #[test]
    fn resource_star_only_for_list_and_describe_calls() {
        for document in every_document() {
            for statement in document["Statement"].as_array().into_iter().flatten() {
                let star = statement["Resource"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r == "*"));
                if star {
                    for action in statement["Action"].as_array().into_iter().flatten() {
                        let name = action.as_str().unwrap_or_default();
                        let verb = name.split(':').nth(1).unwrap_or_default();
                        assert!(
                            verb.starts_with("List") || verb.starts_with("Describe"),
                            "{name} on Resource *"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fence_reads_only_its_two_secrets_and_changes_only_its_accelerator() {
        let document = fence_policy(&example(), &scope(), "f").to_string();
        assert!(document.contains(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:keycloak-fence/webhook-password-??????"
        ));
        assert!(document.contains(&format!(
            "{}/listener/*/endpoint-group/*",
            scope().accelerator_arn
        )));
    }

    /// Exactly the three calls the fence makes, on exactly its table: a wildcard, a `Scan` or
    /// another table would let the fence read or rewrite records it has no business with.
    #[test]
    fn fence_records_decisions_in_its_table_only() {
        let document = fence_policy(&example(), &scope(), "f");
        let statements: Vec<&Value> = document["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                s["Action"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a.as_str().is_some_and(|a| a.starts_with("dynamodb:")))
            })
            .collect();
        assert_eq!(
            statements,
            [&json!({
                "Sid": "RecordDecisions",
                "Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                "Resource": ["arn:aws:dynamodb:eu-west-1:123456789012:table/keycloak-fence-decisions"]
            })]
        );
        let mut configured = example();
        configured.fence.decision_table = Some("fence.records".into());
        assert!(
            fence_policy(&configured, &scope(), "f")
                .to_string()
                .contains("\"arn:aws:dynamodb:eu-west-1:123456789012:table/fence.records\"")
        );
        for other in [route53_policy(&example(), &[], &scope(), "r"), {
            let deployment = example();
            let vpc = deployment
                .vpc
                .clone()
                .unwrap_or_else(|| panic!("example has [vpc]"));
            vpc_policy(&deployment, &vpc, &scope(), "v")
        }] {
            assert!(!other.to_string().contains("dynamodb"), "{other}");
        }
    }

    #[test]
    fn partition_follows_the_region() {
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("eu-west-1"), "aws");
    }
}
