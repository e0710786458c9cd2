//! Which AWS service and operation a request calls, read from the request the way AWS routes it,
//! and the error body each protocol's clients expect.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};

/// The wire protocol of a call, which decides the shape of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// awsJson 1.1: `X-Amz-Target: Service.Operation` (Secrets Manager, EventBridge).
    AwsJson,
    /// awsJson 1.0: the same, `Content-Type: application/x-amz-json-1.0`
    /// (DynamoDB: `X-Amz-Target: DynamoDB_20120810.PutItem`).
    AwsJson10,
    /// awsQuery: `Action=Operation` form (ELBv2, IAM, SNS, CloudWatch).
    Query,
    /// EC2's variant of the query protocol, with its own error envelope.
    Ec2Query,
    /// restXml: operation in method and path (Route 53).
    RestXml,
    /// restJson1: operation in method and path (Lambda).
    RestJson,
    /// Smithy RPC v2 CBOR: `/service/S/operation/Op` (recent CloudWatch SDKs).
    RpcV2Cbor,
}

/// One AWS call as the front saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// SigV4 signing name from the credential scope, or `unknown` for an unsigned request.
    pub service: String,
    /// API name (`GetSecretValue`), or `METHOD /path/{}` for a REST call not in the table.
    pub operation: String,
    pub protocol: Protocol,
}

impl Call {
    /// `service.Operation`, the key of `by_operation`.
    pub fn qualified_operation(&self) -> String {
        format!("{}.{}", self.service, self.operation)
    }
}

const UNKNOWN_SERVICE: &str = "unknown";

/// REST operations the project calls, by signing name, method and path template
/// (`{}` is one path segment).
const REST_OPERATIONS: &[(&str, &str, &str, &str)] = &[
    (
        "route53",
        "POST",
        "/2013-04-01/healthcheck",
        "CreateHealthCheck",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/healthcheck",
        "ListHealthChecks",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/healthcheck/{}",
        "GetHealthCheck",
    ),
    (
        "route53",
        "POST",
        "/2013-04-01/healthcheck/{}",
        "UpdateHealthCheck",
    ),
    (
        "route53",
        "DELETE",
        "/2013-04-01/healthcheck/{}",
        "DeleteHealthCheck",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/healthcheck/{}/status",
        "GetHealthCheckStatus",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/healthcheckcount",
        "GetHealthCheckCount",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/tags/{}/{}",
        "ListTagsForResource",
    ),
    (
        "route53",
        "POST",
        "/2013-04-01/tags/{}/{}",
        "ChangeTagsForResource",
    ),
    (
        "route53",
        "POST",
        "/2013-04-01/hostedzone",
        "CreateHostedZone",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/hostedzone",
        "ListHostedZones",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/hostedzone/{}",
        "GetHostedZone",
    ),
    (
        "route53",
        "DELETE",
        "/2013-04-01/hostedzone/{}",
        "DeleteHostedZone",
    ),
    (
        "route53",
        "POST",
        "/2013-04-01/hostedzone/{}/rrset",
        "ChangeResourceRecordSets",
    ),
    (
        "route53",
        "GET",
        "/2013-04-01/hostedzone/{}/rrset",
        "ListResourceRecordSets",
    ),
    ("route53", "GET", "/2013-04-01/change/{}", "GetChange"),
    ("lambda", "POST", "/2015-03-31/functions", "CreateFunction"),
    ("lambda", "GET", "/2015-03-31/functions", "ListFunctions"),
    ("lambda", "GET", "/2015-03-31/functions/{}", "GetFunction"),
    (
        "lambda",
        "DELETE",
        "/2015-03-31/functions/{}",
        "DeleteFunction",
    ),
    (
        "lambda",
        "POST",
        "/2015-03-31/functions/{}/invocations",
        "Invoke",
    ),
    (
        "lambda",
        "PUT",
        "/2015-03-31/functions/{}/code",
        "UpdateFunctionCode",
    ),
    (
        "lambda",
        "GET",
        "/2015-03-31/functions/{}/configuration",
        "GetFunctionConfiguration",
    ),
    (
        "lambda",
        "PUT",
        "/2015-03-31/functions/{}/configuration",
        "UpdateFunctionConfiguration",
    ),
    (
        "lambda",
        "POST",
        "/2015-03-31/functions/{}/policy",
        "AddPermission",
    ),
    (
        "lambda",
        "GET",
        "/2015-03-31/functions/{}/policy",
        "GetPolicy",
    ),
    (
        "lambda",
        "DELETE",
        "/2015-03-31/functions/{}/policy/{}",
        "RemovePermission",
    ),
    (
        "lambda",
        "PUT",
        "/2017-10-31/functions/{}/concurrency",
        "PutFunctionConcurrency",
    ),
    (
        "lambda",
        "PUT",
        "/2019-09-25/functions/{}/event-invoke-config",
        "PutFunctionEventInvokeConfig",
    ),
    (
        "lambda",
        "GET",
        "/2019-09-25/functions/{}/event-invoke-config",
        "GetFunctionEventInvokeConfig",
    ),
    (
        "lambda",
        "DELETE",
        "/2017-10-31/functions/{}/concurrency",
        "DeleteFunctionConcurrency",
    ),
    (
        "lambda",
        "GET",
        "/2019-09-30/functions/{}/concurrency",
        "GetFunctionConcurrency",
    ),
    (
        "lambda",
        "POST",
        "/2021-10-31/functions/{}/url",
        "CreateFunctionUrlConfig",
    ),
    (
        "lambda",
        "GET",
        "/2021-10-31/functions/{}/url",
        "GetFunctionUrlConfig",
    ),
    (
        "lambda",
        "PUT",
        "/2021-10-31/functions/{}/url",
        "UpdateFunctionUrlConfig",
    ),
    (
        "lambda",
        "DELETE",
        "/2021-10-31/functions/{}/url",
        "DeleteFunctionUrlConfig",
    ),
    ("lambda", "POST", "/2017-03-31/tags/{}", "TagResource"),
    ("lambda", "GET", "/2017-03-31/tags/{}", "ListTags"),
    ("lambda", "DELETE", "/2017-03-31/tags/{}", "UntagResource"),
];

/// Services whose REST protocol is XML; every other REST service here speaks JSON.
const REST_XML_SERVICES: &[&str] = &["route53", "s3", "cloudfront"];

pub fn identify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Call {
    let service = signing_name(headers, uri).unwrap_or_else(|| UNKNOWN_SERVICE.to_string());

    if let Some(target) = header_str(headers, "x-amz-target") {
        let operation = target.rsplit_once('.').map_or(target, |(_, op)| op);
        let json_1_0 = header_str(headers, header::CONTENT_TYPE.as_str())
            .is_some_and(|content_type| content_type.starts_with("application/x-amz-json-1.0"));
        return Call {
            service,
            operation: operation.to_string(),
            protocol: if json_1_0 {
                Protocol::AwsJson10
            } else {
                Protocol::AwsJson
            },
        };
    }

    let is_form = header_str(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|content_type| content_type.starts_with("application/x-www-form-urlencoded"));
    let action = uri
        .query()
        .and_then(|query| form_field(query, "Action"))
        .or_else(|| {
            is_form
                .then(|| std::str::from_utf8(body).ok())
                .flatten()
                .and_then(|form| form_field(form, "Action"))
        })
        .filter(|action| !action.is_empty() && action.chars().all(|c| c.is_ascii_alphanumeric()));
    if let Some(operation) = action {
        let protocol = if service == "ec2" {
            Protocol::Ec2Query
        } else {
            Protocol::Query
        };
        return Call {
            service,
            operation,
            protocol,
        };
    }

    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    if let ["service", _, "operation", operation] = segments.as_slice() {
        return Call {
            service,
            operation: (*operation).to_string(),
            protocol: Protocol::RpcV2Cbor,
        };
    }

    let protocol = if REST_XML_SERVICES.contains(&service.as_str()) {
        Protocol::RestXml
    } else {
        Protocol::RestJson
    };
    let operation = REST_OPERATIONS
        .iter()
        .find(|(table_service, table_method, template, _)| {
            *table_service == service
                && *table_method == method.as_str()
                && template_matches(template, &segments)
        })
        .map_or_else(
            || format!("{method} {}", path_template(&segments)),
            |(_, _, _, operation)| (*operation).to_string(),
        );
    Call {
        service,
        operation,
        protocol,
    }
}

/// The answer a client of `call`'s protocol parses as the AWS error `code`.
pub fn error_response(call: &Call, status: StatusCode, code: Option<&str>) -> Response {
    let code = code.unwrap_or_else(|| default_error_code(call.protocol, status));
    let message = "injected by the sandbox's AWS front";
    let request_id = request_id();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), value);
    }
    let body = match call.protocol {
        Protocol::AwsJson | Protocol::AwsJson10 | Protocol::RestJson | Protocol::RpcV2Cbor => {
            let content_type = match call.protocol {
                Protocol::AwsJson => "application/x-amz-json-1.1",
                Protocol::AwsJson10 => "application/x-amz-json-1.0",
                _ => "application/json",
            };
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Ok(value) = HeaderValue::from_str(code) {
                headers.insert(HeaderName::from_static("x-amzn-errortype"), value);
            }
            serde_json::json!({ "__type": code, "message": message }).to_string()
        }
        Protocol::Ec2Query => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
                 <Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
                xml_escape(code)
            )
        }
        Protocol::Query | Protocol::RestXml => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
            let fault_type = if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>{fault_type}</Type>\
                 <Code>{}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                xml_escape(code)
            )
        }
    };
    (status, headers, Body::from(body)).into_response()
}

fn default_error_code(protocol: Protocol, status: StatusCode) -> &'static str {
    let json = matches!(
        protocol,
        Protocol::AwsJson | Protocol::AwsJson10 | Protocol::RestJson | Protocol::RpcV2Cbor
    );
    match (status.as_u16(), protocol) {
        (429, Protocol::Ec2Query) => "RequestLimitExceeded",
        (429, _) if json => "ThrottlingException",
        (429, _) => "Throttling",
        (503, Protocol::Ec2Query) => "Unavailable",
        (503, _) => "ServiceUnavailable",
        (500, Protocol::Ec2Query) => "InternalError",
        (500, _) => "InternalFailure",
        (403, Protocol::Ec2Query) => "UnauthorizedOperation",
        (403, _) if json => "AccessDeniedException",
        (403, _) => "AccessDenied",
        (400, Protocol::Ec2Query) => "InvalidParameterValue",
        (400, _) if json => "ValidationException",
        (400, _) => "ValidationError",
        _ => "SandboxInjectedFault",
    }
}

fn request_id() -> String {
    let hex = |n: usize| -> String {
        std::iter::repeat_with(|| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .take(n)
            .collect()
    };
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The signing name from the SigV4 credential scope `AKID/DATE/REGION/SERVICE/aws4_request`,
/// in the `Authorization` header or, for a presigned URL, the `X-Amz-Credential` parameter.
fn signing_name(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let credential = header_str(headers, header::AUTHORIZATION.as_str())
        .and_then(|authorization| {
            let start = authorization.find("Credential=")? + "Credential=".len();
            let rest = &authorization[start..];
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            Some(rest[..end].to_string())
        })
        .or_else(|| {
            uri.query()
                .and_then(|query| form_field(query, "X-Amz-Credential"))
        })?;
    let scope: Vec<&str> = credential.split('/').collect();
    // SigV4a scopes have no region (`AKID/DATE/SERVICE/aws4_request`): the service is always
    // the part before the terminator.
    let terminator = scope.iter().rposition(|part| *part == "aws4_request")?;
    let service = scope.get(terminator.checked_sub(1)?)?;
    (terminator >= 3 && !service.is_empty()).then(|| (*service).to_string())
}

/// The decoded value of `name` in an `application/x-www-form-urlencoded` string.
fn form_field(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(high), Some(low)) => {
                    // Two hex digits are at most 0xff.
                    decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'%'));
                    i += 2;
                }
                _ => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn template_matches(template: &str, segments: &[&str]) -> bool {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    parts.len() == segments.len()
        && parts
            .iter()
            .zip(segments)
            .all(|(part, segment)| *part == "{}" || part == segment)
}

/// The path with its identifiers replaced by `{}`, so that calls on different resources count
/// as one operation.
fn path_template(segments: &[&str]) -> String {
    let template: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(index, segment)| {
            let api_version = index == 0 && is_date(segment);
            let looks_like_id = segment.len() > 24
                || segment
                    .chars()
                    .any(|c| c.is_ascii_digit() || matches!(c, ':' | '%' | '=' | '.'));
            if looks_like_id && !api_version {
                "{}"
            } else {
                segment
            }
        })
        .collect();
    format!("/{}", template.join("/"))
}

fn is_date(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(service: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/eu-west-1/{service}/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc"
        );
        if let Ok(value) = HeaderValue::from_str(&authorization) {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    fn call(
        method: Method,
        uri: &'static str,
        headers: &HeaderMap,
        body: &str,
    ) -> (String, Protocol) {
        let call = identify(&method, &Uri::from_static(uri), headers, body.as_bytes());
        (call.qualified_operation(), call.protocol)
    }

    #[test]
    fn json_protocol_operation_comes_from_the_target() {
        let mut headers = signed("secretsmanager");
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("secretsmanager.GetSecretValue"),
        );
        assert_eq!(
            call(Method::POST, "/", &headers, "{}"),
            (
                "secretsmanager.GetSecretValue".to_string(),
                Protocol::AwsJson
            )
        );
    }

    /// DynamoDB's JSON 1.0, as the AWS SDKs send it: counted by its operation, and a fault
    /// injected into it answered in its own content type.
    #[tokio::test]
    async fn dynamodb_is_json_1_0_named_from_its_target() {
        let mut headers = signed("dynamodb");
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.PutItem"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        let call = identify(
            &Method::POST,
            &Uri::from_static("/"),
            &headers,
            br#"{"TableName": "t"}"#,
        );
        assert_eq!(call.qualified_operation(), "dynamodb.PutItem");
        assert_eq!(call.protocol, Protocol::AwsJson10);
        let response = error_response(&call, StatusCode::BAD_REQUEST, None);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/x-amz-json-1.0")
        );
        assert_eq!(
            response
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("ValidationException")
        );
    }

    #[test]
    fn query_protocol_operation_comes_from_the_action_field() {
        let mut headers = signed("ec2");
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert_eq!(
            call(
                Method::POST,
                "/",
                &headers,
                "Action=DescribeVpcs&Version=2016-11-15"
            ),
            ("ec2.DescribeVpcs".to_string(), Protocol::Ec2Query)
        );
        let mut headers = signed("elasticloadbalancing");
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            call(
                Method::POST,
                "/",
                &headers,
                "Version=2015-12-01&Action=DescribeTags&ResourceArns.member.1=arn%3Aaws"
            ),
            (
                "elasticloadbalancing.DescribeTags".to_string(),
                Protocol::Query
            )
        );
        assert_eq!(
            call(
                Method::GET,
                "/?Action=ListTopics&Version=2010-03-31",
                &signed("sns"),
                ""
            ),
            ("sns.ListTopics".to_string(), Protocol::Query)
        );
    }

    #[test]
    fn rest_operations_are_named_from_the_table() {
        let route53 = signed("route53");
        for (method, uri, expected) in [
            (
                Method::POST,
                "/2013-04-01/healthcheck",
                "route53.CreateHealthCheck",
            ),
            (
                Method::GET,
                "/2013-04-01/healthcheck/2b3c1a7e-1111-4c2d-9e0f-abcdef012345",
                "route53.GetHealthCheck",
            ),
            (
                Method::POST,
                "/2013-04-01/healthcheck/2b3c1a7e-1111-4c2d-9e0f-abcdef012345",
                "route53.UpdateHealthCheck",
            ),
            (
                Method::POST,
                "/2013-04-01/hostedzone/Z123/rrset/",
                "route53.ChangeResourceRecordSets",
            ),
        ] {
            assert_eq!(
                call(method, uri, &route53, ""),
                (expected.to_string(), Protocol::RestXml)
            );
        }
        assert_eq!(
            call(
                Method::PUT,
                "/2017-10-31/functions/fence-lambda/concurrency",
                &signed("lambda"),
                "{}"
            ),
            (
                "lambda.PutFunctionConcurrency".to_string(),
                Protocol::RestJson
            )
        );
    }

    #[test]
    fn unknown_rest_operation_is_named_by_method_and_path_template() {
        assert_eq!(
            call(
                Method::GET,
                "/2013-04-01/hostedzone/Z0123456789/dnssec",
                &signed("route53"),
                ""
            )
            .0,
            "route53.GET /2013-04-01/hostedzone/{}/dnssec"
        );
    }

    #[test]
    fn rpc_v2_cbor_operation_comes_from_the_path() {
        assert_eq!(
            call(
                Method::POST,
                "/service/GraniteServiceVersion20100801/operation/PutMetricAlarm",
                &signed("monitoring"),
                ""
            ),
            ("monitoring.PutMetricAlarm".to_string(), Protocol::RpcV2Cbor)
        );
    }

    #[test]
    fn service_from_presigned_url_and_sigv4a_scope() {
        let presigned = "/?Action=GetCallerIdentity&X-Amz-Credential=AKID%2F20261125%2Fus-east-1%2Fsts%2Faws4_request";
        assert_eq!(
            call(Method::GET, presigned, &HeaderMap::new(), "").0,
            "sts.GetCallerIdentity"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-ECDSA-P256-SHA256 Credential=AKID/20261125/s3/aws4_request, SignedHeaders=host"),
        );
        assert_eq!(
            identify(&Method::GET, &Uri::from_static("/"), &headers, b"").service,
            "s3"
        );
    }

    #[test]
    fn unsigned_request_counts_as_unknown_service() {
        assert_eq!(
            call(Method::GET, "/", &HeaderMap::new(), "").0,
            "unknown.GET /"
        );
    }

    async fn injected_error(protocol: Protocol, code: Option<&str>) -> (Option<String>, String) {
        let call = Call {
            service: "x".to_string(),
            operation: "Op".to_string(),
            protocol,
        };
        let response = error_response(&call, StatusCode::SERVICE_UNAVAILABLE, code);
        let errortype = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        (errortype, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn error_bodies_follow_each_protocol() {
        let (errortype, json) = injected_error(Protocol::AwsJson, None).await;
        assert_eq!(errortype.as_deref(), Some("ServiceUnavailable"));
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(parsed["__type"], "ServiceUnavailable");
        let (_, xml) = injected_error(Protocol::Query, Some("Throttling")).await;
        assert!(
            xml.contains("<ErrorResponse><Error><Type>Receiver</Type><Code>Throttling</Code>"),
            "{xml}"
        );
        let (_, ec2) = injected_error(Protocol::Ec2Query, Some("<bad>")).await;
        assert!(
            ec2.contains("<Response><Errors><Error><Code>&lt;bad&gt;</Code>"),
            "{ec2}"
        );
    }

    #[test]
    fn percent_decoding_handles_escapes_and_malformed_input() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
