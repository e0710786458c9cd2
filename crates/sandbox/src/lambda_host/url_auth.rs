//! Who may call a Function URL: Lambda's rule for an unsigned request, evaluated against the
//! function's resource policy and its URL's auth type as the Lambda API reports them.
//!
//! Since October 2025 a Function URL with auth type `NONE` needs two statements that allow
//! anyone (`Principal: "*"`): `lambda:InvokeFunctionUrl` (condition
//! `lambda:FunctionUrlAuthType` = `NONE`) and `lambda:InvokeFunction` (condition
//! `lambda:InvokedViaFunctionUrl` = `true`). Lambda answers 403 without calling the function
//! when either is missing or a `Deny` matches ("Control access to Lambda function URLs" in the
//! Lambda developer guide). Written from that page, not from any client's code.

use serde_json::Value;

/// What the front checks before it invokes the function.
#[derive(Debug, Clone, PartialEq)]
pub enum UrlAccess {
    /// No check: a host configured in code, with no deployment behind it.
    Unchecked,
    /// A deployed function: its URL's auth type (`None` when it has no URL) and its resource
    /// policy (`None` when it has none), as read from the Lambda API.
    Deployed {
        auth_type: Option<String>,
        policy: Option<Value>,
    },
}

/// Why a request was refused; the front answers 403 either way, as Lambda does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the function has no Function URL")]
    NoUrl,
    #[error("the Function URL's auth type is {0}: an unsigned request is refused")]
    SignatureRequired(String),
    #[error("no statement allows {action} to anyone invoking through the Function URL")]
    NotAllowed { action: &'static str },
    #[error("a Deny statement matches {action}")]
    ExplicitDeny { action: &'static str },
}

/// The body Lambda answers a refused Function URL request with.
pub const FORBIDDEN_MESSAGE: &str = "Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html";

const INVOKE_FUNCTION_URL: &str = "lambda:InvokeFunctionUrl";
const INVOKE_FUNCTION: &str = "lambda:InvokeFunction";

/// The request context of an unsigned request through a URL of auth type `NONE`.
const CONTEXT: [(&str, &str); 2] = [
    ("lambda:functionurlauthtype", "NONE"),
    ("lambda:invokedviafunctionurl", "true"),
];

impl UrlAccess {
    pub fn authorize(&self) -> Result<(), Denied> {
        let (auth_type, policy) = match self {
            UrlAccess::Unchecked => return Ok(()),
            UrlAccess::Deployed { auth_type, policy } => (auth_type, policy),
        };
        match auth_type.as_deref() {
            None => return Err(Denied::NoUrl),
            Some("NONE") => {}
            Some(other) => return Err(Denied::SignatureRequired(other.to_string())),
        }
        let statements: Vec<&Value> = match policy.as_ref().map(|p| &p["Statement"]) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(single @ Value::Object(_)) => vec![single],
            _ => Vec::new(),
        };
        for action in [INVOKE_FUNCTION_URL, INVOKE_FUNCTION] {
            let applies = |effect: &str| {
                statements
                    .iter()
                    .any(|s| s["Effect"] == effect && statement_applies(s, action))
            };
            if applies("Deny") {
                return Err(Denied::ExplicitDeny { action });
            }
            if !applies("Allow") {
                return Err(Denied::NotAllowed { action });
            }
        }
        Ok(())
    }
}

fn statement_applies(statement: &Value, action: &str) -> bool {
    names_action(&statement["Action"], action)
        && names_anyone(&statement["Principal"])
        && conditions_hold(statement)
}

fn names_action(actions: &Value, action: &str) -> bool {
    let matches = |pattern: &str| {
        pattern == "*"
            || pattern.eq_ignore_ascii_case("lambda:*")
            || pattern.eq_ignore_ascii_case(action)
    };
    match actions {
        Value::String(one) => matches(one),
        Value::Array(many) => many.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

/// An anonymous caller is matched only by the wildcard principal.
fn names_anyone(principal: &Value) -> bool {
    match principal {
        Value::String(p) => p == "*",
        Value::Object(map) => match map.get("AWS") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Array(ps)) => ps.iter().any(|p| p == "*"),
            _ => false,
        },
        _ => false,
    }
}

/// Every condition must hold in the request's context; a key the context lacks, or an
/// operator this front does not know, fails the condition (IAM's rule for a missing key
/// without `...IfExists`). moto keeps the two Function URL conditions as top-level keys of
/// the statement under their AddPermission names; they count the same.
fn conditions_hold(statement: &Value) -> bool {
    let context = |key: &str| {
        let key = key.to_ascii_lowercase();
        CONTEXT.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    };
    if let Some(auth) = statement.get("FunctionUrlAuthType")
        && auth.as_str() != context("lambda:FunctionUrlAuthType")
    {
        return false;
    }
    if let Some(via) = statement.get("InvokedViaFunctionUrl")
        && !(via == true || via.as_str().is_some_and(|v| v.eq_ignore_ascii_case("true")))
    {
        return false;
    }
    let Some(conditions) = statement.get("Condition") else {
        return true;
    };
    let Some(operators) = conditions.as_object() else {
        return false;
    };
    operators.iter().all(|(operator, keys)| {
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, wanted)| {
            let Some(actual) = context(key) else {
                return false;
            };
            let wanted: Vec<String> = match wanted {
                Value::Array(values) => values.iter().map(scalar).collect(),
                other => vec![scalar(other)],
            };
            match operator.as_str() {
                "StringEquals" | "Bool" => wanted.iter().any(|w| w == actual),
                "StringEqualsIgnoreCase" => wanted.iter().any(|w| w.eq_ignore_ascii_case(actual)),
                _ => false,
            }
        })
    })
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url_statement() -> Value {
        json!({"Sid": "url", "Effect": "Allow", "Principal": "*",
               "Action": "lambda:InvokeFunctionUrl", "Resource": "arn:aws:lambda:eu-west-1:1:function:f",
               "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}})
    }

    fn invoke_statement() -> Value {
        json!({"Sid": "invoke", "Effect": "Allow", "Principal": "*",
               "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:eu-west-1:1:function:f",
               "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}})
    }

    fn deployed(statements: Vec<Value>) -> UrlAccess {
        UrlAccess::Deployed {
            auth_type: Some("NONE".into()),
            policy: Some(json!({"Version": "2012-10-17", "Statement": statements})),
        }
    }

    #[test]
    fn both_statements_let_anyone_in() {
        assert_eq!(
            deployed(vec![url_statement(), invoke_statement()]).authorize(),
            Ok(())
        );
    }

    #[test]
    fn the_url_statement_alone_is_refused_since_october_2025() {
        assert_eq!(
            deployed(vec![url_statement()]).authorize(),
            Err(Denied::NotAllowed {
                action: INVOKE_FUNCTION
            })
        );
    }

    #[test]
    fn the_invoke_statement_alone_is_refused() {
        assert_eq!(
            deployed(vec![invoke_statement()]).authorize(),
            Err(Denied::NotAllowed {
                action: INVOKE_FUNCTION_URL
            })
        );
    }

    #[test]
    fn moto_form_of_the_conditions_counts_the_same() {
        let policy = vec![
            json!({"Sid": "url", "Effect": "Allow", "Principal": "*",
                   "Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE"}),
            json!({"Sid": "invoke", "Effect": "Allow", "Principal": "*",
                   "Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": true}),
        ];
        assert_eq!(deployed(policy).authorize(), Ok(()));
    }

    #[test]
    fn a_condition_the_request_cannot_meet_does_not_allow() {
        let mut wrong_auth = url_statement();
        wrong_auth["Condition"] =
            json!({"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}});
        let mut source_arn = invoke_statement();
        source_arn["Condition"] =
            json!({"ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:1:t"}});
        assert!(
            deployed(vec![wrong_auth, invoke_statement()])
                .authorize()
                .is_err()
        );
        assert!(
            deployed(vec![url_statement(), source_arn])
                .authorize()
                .is_err()
        );
    }

    #[test]
    fn a_service_principal_does_not_admit_anonymous_callers() {
        let mut sns_only = invoke_statement();
        sns_only["Principal"] = json!({"Service": "sns.amazonaws.com"});
        assert!(
            deployed(vec![url_statement(), sns_only])
                .authorize()
                .is_err()
        );
    }

    #[test]
    fn a_deny_wins() {
        let deny = json!({"Sid": "deny", "Effect": "Deny", "Principal": "*", "Action": "lambda:*"});
        assert_eq!(
            deployed(vec![url_statement(), invoke_statement(), deny]).authorize(),
            Err(Denied::ExplicitDeny {
                action: INVOKE_FUNCTION_URL
            })
        );
    }

    #[test]
    fn no_url_no_policy_or_iam_auth_are_refused() {
        let no_url = UrlAccess::Deployed {
            auth_type: None,
            policy: None,
        };
        assert_eq!(no_url.authorize(), Err(Denied::NoUrl));
        let no_policy = UrlAccess::Deployed {
            auth_type: Some("NONE".into()),
            policy: None,
        };
        assert!(no_policy.authorize().is_err());
        let iam = UrlAccess::Deployed {
            auth_type: Some("AWS_IAM".into()),
            policy: Some(json!({"Statement": [url_statement(), invoke_statement()]})),
        };
        assert_eq!(
            iam.authorize(),
            Err(Denied::SignatureRequired("AWS_IAM".into()))
        );
    }

    #[test]
    fn unchecked_hosts_admit_everyone() {
        assert_eq!(UrlAccess::Unchecked.authorize(), Ok(()));
    }
}
