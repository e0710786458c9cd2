//! Global Accelerator's awsJson1.1 protocol: `POST /` with
//! `X-Amz-Target: GlobalAccelerator_V20180706.<Operation>` and a JSON body, answered in
//! `application/x-amz-json-1.1`. Errors carry `{"__type", "message"}` and the code again in
//! `x-amzn-ErrorType`, which is where boto3 and the Rust SDK look for it. SigV4 is not checked.

use super::Shared;
use super::error::GaError;
use super::model::{
    CreateEndpointGroup, CreateListener, EndpointConfiguration, EndpointGroupSettings,
    EndpointIdentifier, Health, Page, Tag, Topology, UpdateAccelerator, UpdateListener, required,
    uuid,
};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const TARGET_PREFIX: &str = "GlobalAccelerator_V20180706.";
const AWS_JSON: &str = "application/x-amz-json-1.1";

macro_rules! operations {
    ($($operation:ident),* $(,)?) => {
        /// The operations the emulator serves, named as in `X-Amz-Target`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(super) enum Operation { $($operation),* }

        impl Operation {
            pub const ALL: &[Operation] = &[$(Operation::$operation),*];

            pub fn name(self) -> &'static str {
                match self { $(Operation::$operation => stringify!($operation)),* }
            }
        }
    };
}

operations!(
    CreateAccelerator,
    DescribeAccelerator,
    ListAccelerators,
    UpdateAccelerator,
    DeleteAccelerator,
    CreateListener,
    DescribeListener,
    ListListeners,
    UpdateListener,
    DeleteListener,
    CreateEndpointGroup,
    DescribeEndpointGroup,
    ListEndpointGroups,
    UpdateEndpointGroup,
    DeleteEndpointGroup,
    AddEndpoints,
    RemoveEndpoints,
    TagResource,
    UntagResource,
    ListTagsForResource,
);

impl Operation {
    pub fn from_name(name: &str) -> Option<Operation> {
        Self::ALL.iter().copied().find(|op| op.name() == name)
    }
}

/// The handler of `POST /`.
pub(super) async fn serve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (outcome, span) = crate::timeline::timed(call(&shared, &headers, &body)).await;
    if let Some(span) = span {
        shared.lock().controls.calls.timeline.push(span);
    }
    respond(outcome)
}

/// Counts the call, applies the test controls, then runs the operation under the lock.
async fn call(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, GaError> {
    let op = operation(headers)?;
    let group = endpoint_group_arn(body);
    let (latency, fault) = shared.lock().controls.begin_call(op, group.as_deref());
    crate::net::added_latency(latency).await;
    if let Some(error) = fault {
        return Err(error);
    }
    let mut state = shared.lock();
    let state = &mut *state;
    dispatch(&mut state.topology, &state.health, op, body)
}

/// The endpoint group a request names, for faults aimed at one group.
fn endpoint_group_arn(body: &[u8]) -> Option<String> {
    let input: Value = serde_json::from_slice(body).ok()?;
    input.get("EndpointGroupArn")?.as_str().map(str::to_owned)
}

fn operation(headers: &HeaderMap) -> Result<Operation, GaError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name)
        .ok_or_else(|| {
            GaError::new(
                "UnknownOperationException",
                format!("Unknown operation {target:?}"),
            )
        })
}

fn respond(outcome: Result<Value, GaError>) -> Response {
    let (status, body, error_type) = match outcome {
        Ok(body) => (StatusCode::OK, body, None),
        Err(error) => (
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            json!({ "__type": error.code, "message": error.message }),
            HeaderValue::from_str(&error.code).ok(),
        ),
    };
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(AWS_JSON));
    if let Ok(request_id) = HeaderValue::from_str(&uuid()) {
        headers.insert("x-amzn-requestid", request_id);
    }
    if let Some(error_type) = error_type {
        headers.insert("x-amzn-errortype", error_type);
    }
    response
}

fn dispatch(
    topology: &mut Topology,
    health: &Health,
    op: Operation,
    body: &[u8],
) -> Result<Value, GaError> {
    let input = parse_body(body)?;
    Ok(match op {
        Operation::CreateAccelerator => {
            json!({ "Accelerator": topology.create_accelerator(parse(&input)?)? })
        }
        Operation::DescribeAccelerator => {
            json!({ "Accelerator": topology.accelerator(&string(&input, "AcceleratorArn")?)? })
        }
        Operation::ListAccelerators => {
            let page = topology.list_accelerators(&parse(&input)?)?;
            list("Accelerators", page, |a| a)
        }
        Operation::UpdateAccelerator => {
            json!({ "Accelerator": topology.update_accelerator(parse::<UpdateAccelerator>(&input)?)? })
        }
        Operation::DeleteAccelerator => {
            topology.delete_accelerator(&string(&input, "AcceleratorArn")?)?;
            json!({})
        }
        Operation::CreateListener => {
            json!({ "Listener": topology.create_listener(parse::<CreateListener>(&input)?)? })
        }
        Operation::DescribeListener => {
            json!({ "Listener": topology.listener(&string(&input, "ListenerArn")?)? })
        }
        Operation::ListListeners => {
            let accelerator_arn = string(&input, "AcceleratorArn")?;
            let page = topology.list_listeners(&accelerator_arn, &parse(&input)?)?;
            list("Listeners", page, |l| l)
        }
        Operation::UpdateListener => {
            json!({ "Listener": topology.update_listener(parse::<UpdateListener>(&input)?)? })
        }
        Operation::DeleteListener => {
            topology.delete_listener(&string(&input, "ListenerArn")?)?;
            json!({})
        }
        Operation::CreateEndpointGroup => {
            let group = topology.create_endpoint_group(parse::<CreateEndpointGroup>(&input)?)?;
            json!({ "EndpointGroup": group.describe(health) })
        }
        Operation::DescribeEndpointGroup => {
            let group = topology.endpoint_group(&string(&input, "EndpointGroupArn")?)?;
            json!({ "EndpointGroup": group.describe(health) })
        }
        Operation::ListEndpointGroups => {
            let listener_arn = string(&input, "ListenerArn")?;
            let page = topology.list_endpoint_groups(&listener_arn, &parse(&input)?)?;
            list("EndpointGroups", page, |g| g.describe(health))
        }
        Operation::UpdateEndpointGroup => {
            let arn = string(&input, "EndpointGroupArn")?;
            let settings = parse::<EndpointGroupSettings>(&input)?;
            json!({ "EndpointGroup": topology.update_endpoint_group(&arn, settings)?.describe(health) })
        }
        Operation::DeleteEndpointGroup => {
            topology.delete_endpoint_group(&string(&input, "EndpointGroupArn")?)?;
            json!({})
        }
        Operation::AddEndpoints => {
            let arn = string(&input, "EndpointGroupArn")?;
            let configurations =
                member::<Vec<EndpointConfiguration>>(&input, "EndpointConfigurations")?;
            let (group, added) = topology.add_endpoints(&arn, configurations)?;
            json!({
                "EndpointDescriptions": group.describe_endpoints(&added, health),
                "EndpointGroupArn": group.arn,
            })
        }
        Operation::RemoveEndpoints => {
            let arn = string(&input, "EndpointGroupArn")?;
            let identifiers = member::<Vec<EndpointIdentifier>>(&input, "EndpointIdentifiers")?;
            topology.remove_endpoints(&arn, identifiers)?;
            json!({})
        }
        Operation::TagResource => {
            let arn = string(&input, "ResourceArn")?;
            topology.tag_resource(&arn, member::<Vec<Tag>>(&input, "Tags")?)?;
            json!({})
        }
        Operation::UntagResource => {
            let arn = string(&input, "ResourceArn")?;
            topology.untag_resource(&arn, &member::<Vec<String>>(&input, "TagKeys")?)?;
            json!({})
        }
        Operation::ListTagsForResource => {
            let accelerator = topology.accelerator(&string(&input, "ResourceArn")?)?;
            json!({ "Tags": accelerator.tags })
        }
    })
}

fn list<'a, T, V: Serialize>(member: &str, page: Page<'a, T>, view: impl Fn(&'a T) -> V) -> Value {
    let mut output = Map::new();
    let items: Vec<V> = page.items.into_iter().map(view).collect();
    output.insert(member.to_owned(), json!(items));
    if let Some(token) = page.next_token {
        output.insert("NextToken".to_owned(), Value::String(token));
    }
    Value::Object(output)
}

/// An empty body is an empty input, as the SDKs send for operations without members.
fn parse_body(body: &[u8]) -> Result<Value, GaError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(input @ Value::Object(_)) => Ok(input),
        Ok(_) => Err(GaError::serialization(
            "The request body must be a JSON object",
        )),
        Err(error) => Err(GaError::serialization(format!("Malformed JSON: {error}"))),
    }
}

fn parse<T: DeserializeOwned>(input: &Value) -> Result<T, GaError> {
    T::deserialize(input).map_err(|error| GaError::serialization(error.to_string()))
}

/// A required member: missing is the service's InvalidArgumentException, the wrong JSON type
/// a SerializationException.
fn member<T: DeserializeOwned>(input: &Value, name: &str) -> Result<T, GaError> {
    let value = input.get(name).filter(|v| !v.is_null());
    let value = required(value, name)?;
    T::deserialize(value).map_err(|error| GaError::serialization(format!("{name}: {error}")))
}

fn string(input: &Value, name: &str) -> Result<String, GaError> {
    member(input, name)
}
