//! Triggering: `POST /apps/{id}/events`, `POST /apps/{id}/batch_events` and the 2011
//! `POST /apps/{id}/channels/{channel}/events`. Every event of a request is validated before any
//! is published; each is encoded once per channel by the adapter.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::Body;
use super::error::bad_request;
use super::signed::authenticate;
use super::{ok_json, ApiError};
use crate::adapter::Publication;
use crate::app::App;
use crate::auth::api::param;
use crate::console::{Activity, Data};
use crate::protocol::{ChannelKind, ChannelName, EventName, SocketId};
use crate::state::State;

/// An event as the SDKs send it (`channels` or the PHP SDK's singular `channel`).
#[derive(Debug, Deserialize)]
struct EventBody {
    name: Option<String>,
    data: Option<Value>,
    channels: Option<Vec<String>>,
    channel: Option<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    batch: Option<Vec<EventBody>>,
}

/// Attributes a trigger may ask for.
#[derive(Debug, Default, Clone, Copy)]
pub struct Info {
    /// `user_count` (answered for presence channels).
    pub user_count: bool,
    /// `subscription_count` (answered when the app has the feature on).
    pub subscription_count: bool,
}

/// An event that passed every check.
#[derive(Debug)]
pub struct Valid {
    /// Not empty, at most 200 characters, not reserved.
    pub name: EventName,
    /// At most the app's `max_event_data_bytes`.
    pub data: String,
    /// At least one, at most the app's `max_channels_per_trigger`, no duplicates, no
    /// encrypted channel among several.
    pub channels: Vec<ChannelName>,
    /// The socket to leave out.
    pub socket_id: Option<SocketId>,
    /// The attributes asked for.
    pub info: Option<Info>,
}

pub(super) async fn trigger(
    req: HttpRequest,
    body: Body,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let signed = authenticate(&req, &body, &state, Some(&path))?;
    Ok(ok_json(trigger_body(&state, &signed.app, &body).await?))
}

/// Checks the body of `/events` for `app` and publishes it: the answer's JSON (`{}`, or the
/// channels' counts asked for with `info`). The REST endpoint and the debug console's Event
/// Creator both trigger through here.
pub async fn trigger_body(state: &State, app: &App, body: &[u8]) -> Result<Value, ApiError> {
    let valid = check_event(app, body)?;
    ready_to_publish(state).await?;
    publish(state, app, &valid).await?;
    Ok(match valid.info {
        Some(info) => {
            json!({ "channels": channel_infos(state, app, &valid.channels, info).await? })
        }
        None => json!({}),
    })
}

pub(super) async fn batch(
    req: HttpRequest,
    body: Body,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let signed = authenticate(&req, &body, &state, Some(&path))?;
    let valid = check_batch(&signed.app, &body)?;
    ready_to_publish(&state).await?;
    for event in &valid {
        publish(&state, &signed.app, event).await?;
    }
    if valid.iter().all(|v| v.info.is_none()) {
        return Ok(ok_json(json!({})));
    }
    let mut infos = Vec::with_capacity(valid.len());
    for v in &valid {
        infos.push(match (v.info, v.channels.first()) {
            (Some(info), Some(channel)) => {
                Value::Object(channel_info(&state, &signed.app, channel, info).await?)
            }
            _ => json!({}),
        });
    }
    Ok(ok_json(json!({ "batch": infos })))
}

/// The 2011 endpoint: name and socket_id in the query, the raw data as the body; 202 `{}`.
pub(super) async fn legacy(
    req: HttpRequest,
    body: Body,
    path: web::Path<(String, String)>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (app_id, channel) = path.into_inner();
    let signed = authenticate(&req, &body, &state, Some(&app_id))?;
    let valid = check_legacy(&signed.app, &signed.query, channel, &body)?;
    ready_to_publish(&state).await?;
    publish(&state, &signed.app, &valid).await?;
    Ok(HttpResponse::Accepted()
        .content_type("application/json")
        .body("{}"))
}

/// The body of `/events`, checked: pure, nothing is published.
pub fn check_event(app: &App, body: &[u8]) -> Result<Valid, ApiError> {
    let event: EventBody = parse_json(body)?;
    validate(app, event, true)
}

/// The body of `/batch_events`, every event checked: pure, nothing is published.
pub fn check_batch(app: &App, body: &[u8]) -> Result<Vec<Valid>, ApiError> {
    let batch: BatchBody = parse_json(body)?;
    let events = batch
        .batch
        .ok_or_else(|| bad_request("Missing parameter: batch"))?;
    let max = app.config.max_batch_events;
    if events.len() > max {
        return Err(bad_request(format!(
            "Batch too large: {} events (the maximum is {max})",
            events.len()
        )));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| validate(app, e, false).map_err(|err| in_batch(i, err)))
        .collect()
}

/// The 2011 endpoint's event: `name` and `socket_id` from the decoded query, the body as the
/// data. Pure, nothing is published.
pub fn check_legacy(
    app: &App,
    query: &[(String, String)],
    channel: String,
    body: &[u8],
) -> Result<Valid, ApiError> {
    let data =
        std::str::from_utf8(body).map_err(|_| bad_request("The body must be valid UTF-8"))?;
    let event = EventBody {
        name: param(query, "name").map(str::to_owned),
        data: Some(Value::String(data.to_owned())),
        channels: Some(vec![channel]),
        channel: None,
        socket_id: param(query, "socket_id").map(str::to_owned),
        info: None,
    };
    validate(app, event, true)
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("Invalid JSON body: {e}")))
}

fn in_batch(index: usize, err: ApiError) -> ApiError {
    match err {
        ApiError::BadRequest(m) => ApiError::BadRequest(format!("batch[{index}]: {m}")),
        ApiError::PayloadTooLarge(m) => ApiError::PayloadTooLarge(format!("batch[{index}]: {m}")),
        other => other,
    }
}

fn validate(app: &App, body: EventBody, many_channels: bool) -> Result<Valid, ApiError> {
    let config = &app.config;
    let name = body
        .name
        .ok_or_else(|| bad_request("Missing parameter: name"))?;
    let name = EventName::parse(&name).map_err(|e| bad_request(e.to_string()))?;
    if name.is_reserved() {
        return Err(bad_request(format!(
            "Event name {} is reserved for Pusher",
            name.as_str()
        )));
    }
    let data = match body.data {
        Some(Value::String(s)) => s,
        Some(_) => return Err(bad_request("data must be a string (JSON-encode it first)")),
        None => return Err(bad_request("Missing parameter: data")),
    };
    if data.len() > config.max_event_data_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "The data content of this event exceeds the allowed maximum ({} bytes).",
            config.max_event_data_bytes
        )));
    }
    let names = match (body.channels, body.channel) {
        (Some(list), _) if many_channels => list,
        (Some(_), _) => return Err(bad_request("A batch event takes a single channel")),
        (None, Some(one)) => vec![one],
        (None, None) => return Err(bad_request("Missing parameter: channels")),
    };
    if names.is_empty() {
        return Err(bad_request("Missing parameter: channels"));
    }
    let max = config.max_channels_per_trigger;
    if names.len() > max {
        return Err(bad_request(format!(
            "Too many channels: {} (the maximum is {max})",
            names.len()
        )));
    }
    let mut channels = Vec::with_capacity(names.len());
    for n in &names {
        let channel = ChannelName::parse(n, app.channel_name_max_length)
            .map_err(|e| bad_request(e.to_string()))?;
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    if channels.len() > 1
        && channels
            .iter()
            .any(|c| c.kind() == ChannelKind::PrivateEncrypted)
    {
        return Err(bad_request(
            "Cannot trigger to several channels when one of them is encrypted",
        ));
    }
    let socket_id = match body.socket_id {
        Some(s) => Some(SocketId::parse(&s).map_err(|e| bad_request(e.to_string()))?),
        None => None,
    };
    let mut info = body.info.as_deref().map(parse_info).transpose()?;
    if let Some(info) = info.as_mut() {
        // An opt-in feature on hosted Pusher: left out unless the app has it on.
        info.subscription_count &= config.subscription_count;
    }
    Ok(Valid {
        name,
        data,
        channels,
        socket_id,
        info,
    })
}

fn parse_info(list: &str) -> Result<Info, ApiError> {
    let mut info = Info::default();
    for attr in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match attr {
            "user_count" => info.user_count = true,
            "subscription_count" => info.subscription_count = true,
            other => return Err(bad_request(format!("Unknown info attribute: {other}"))),
        }
    }
    Ok(info)
}

/// How long a trigger waits for the fan-out backlog to drain before publishing anyway.
const BACKLOG_WAIT: Duration = Duration::from_secs(2);

/// Refuses (503) when the cluster cannot be reached, before anything is delivered, so a
/// publisher's retry does not deliver twice; then lets fan-out and the readers catch up while
/// the backlog holds publishers (its queued frames, or readers near full: `connection::Backlog`),
/// so publishers flat out are held to the pace of the readers rather than their queues
/// overflowing (and being closed with 4100).
async fn ready_to_publish(state: &State) -> Result<(), ApiError> {
    if !state.adapter.is_available() {
        return Err(ApiError::Unavailable(
            "the cluster is unavailable: Redis is unreachable".into(),
        ));
    }
    if !state.backlog.wait_for_room(BACKLOG_WAIT).await {
        let pressure = state.backlog.pressure();
        tracing::debug!(
            queued = state.backlog.queued(),
            pressed = pressure.pressed,
            brisk = pressure.brisk,
            receivers = pressure.receivers,
            "fan-out backlog still full; publishing anyway"
        );
    }
    Ok(())
}

/// Publishes a checked event to each of its channels; each delivery is reported to the app's
/// console feed here, once, by the node the request came to.
async fn publish(state: &State, app: &App, event: &Valid) -> Result<(), ApiError> {
    for channel in &event.channels {
        let publication = Publication {
            channel,
            event: event.name.as_str(),
            data: &event.data,
            user_id: None,
            except: event.socket_id.as_ref(),
            cacheable: true,
        };
        state.adapter.publish(app, publication).await?;
        app.console.report(Activity::ApiEvent {
            channel: channel.as_str(),
            event: event.name.as_str(),
            data: Data::of(&event.data),
            excluded_socket_id: event.socket_id.as_ref().map(SocketId::as_str),
        });
    }
    Ok(())
}

async fn channel_infos(
    state: &State,
    app: &App,
    channels: &[ChannelName],
    info: Info,
) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    for c in channels
        .iter()
        .filter(|c| c.kind() != ChannelKind::ServerToUser)
    {
        let counts = channel_info(state, app, c, info).await?;
        out.insert(c.to_string(), Value::Object(counts));
    }
    Ok(out)
}

async fn channel_info(
    state: &State,
    app: &App,
    channel: &ChannelName,
    info: Info,
) -> Result<Map<String, Value>, ApiError> {
    let counts = state.adapter.channel(app, channel).await?;
    let mut out = Map::new();
    if info.user_count && channel.kind() == ChannelKind::Presence {
        out.insert("user_count".into(), counts.user_count.into());
    }
    if info.subscription_count {
        out.insert(
            "subscription_count".into(),
            counts.subscription_count.into(),
        );
    }
    Ok(out)
}
