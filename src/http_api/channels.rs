//! Channel queries: `GET /apps/{id}/channels`, `GET /apps/{id}/channels/{name}` and
//! `GET /apps/{id}/channels/{name}/users`, with hosted Pusher's rules on which `info`
//! attributes each channel type allows.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::body::Body;
use super::error::bad_request;
use super::signed::{authenticate, Signed};
use super::{ok_json, ApiError};
use crate::app::App;
use crate::auth::api::param;
use crate::protocol::{ChannelKind, ChannelName};
use crate::state::State;

/// Parsed `info=` attributes of the channel endpoints.
#[derive(Debug, Default)]
struct Attrs {
    user_count: bool,
    subscription_count: bool,
    cache: bool,
}

/// The requested attributes; `subscription_count` only when the app has the setting on (it is
/// an opt-in feature on hosted Pusher), otherwise left out of the answer.
fn attrs(query: &[(String, String)], app: &App) -> Result<Attrs, ApiError> {
    let mut attrs = Attrs::default();
    for attr in param(query, "info")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match attr {
            "user_count" => attrs.user_count = true,
            "subscription_count" => attrs.subscription_count = true,
            "cache" => attrs.cache = true,
            other => return Err(bad_request(format!("Unknown info attribute: {other}"))),
        }
    }
    attrs.subscription_count &= app.config.subscription_count;
    Ok(attrs)
}

pub(super) async fn list(
    req: HttpRequest,
    body: Body,
    path: web::Path<String>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let signed = authenticate(&req, &body, &state, Some(&path))?;
    let prefix = param(&signed.query, "filter_by_prefix").unwrap_or("");
    let attrs = attrs(&signed.query, &signed.app)?;
    if attrs.user_count && !prefix.starts_with("presence-") {
        return Err(bad_request(
            "user_count may only be requested for presence channels: add filter_by_prefix=presence-",
        ));
    }
    if attrs.cache {
        return Err(bad_request(
            "cache may only be requested for a single channel",
        ));
    }
    let mut channels = Map::new();
    for (name, info) in state.adapter.channels(&signed.app, prefix).await? {
        let mut entry = Map::new();
        if attrs.user_count {
            entry.insert("user_count".into(), info.user_count.into());
        }
        if attrs.subscription_count {
            entry.insert("subscription_count".into(), info.subscription_count.into());
        }
        channels.insert(name.to_string(), Value::Object(entry));
    }
    Ok(ok_json(json!({ "channels": channels })))
}

/// Authenticates a `/apps/{app_id}/channels/{channel}…` request and checks the channel name.
fn channel_request(
    req: &HttpRequest,
    body: &[u8],
    state: &State,
    (app_id, channel): (String, String),
) -> Result<(Signed, ChannelName), ApiError> {
    let signed = authenticate(req, body, state, Some(&app_id))?;
    let name = ChannelName::parse(&channel, signed.app.channel_name_max_length)
        .map_err(|e| bad_request(e.to_string()))?;
    Ok((signed, name))
}

pub(super) async fn show(
    req: HttpRequest,
    body: Body,
    path: web::Path<(String, String)>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (signed, name) = channel_request(&req, &body, &state, path.into_inner())?;
    let attrs = attrs(&signed.query, &signed.app)?;
    if attrs.user_count && name.kind() != ChannelKind::Presence {
        return Err(bad_request(
            "user_count is only available for presence channels",
        ));
    }
    if attrs.cache && !name.is_cache() {
        return Err(bad_request("cache is only available for cache channels"));
    }
    let info = state.adapter.channel(&signed.app, &name).await?;
    let mut out = Map::new();
    out.insert("occupied".into(), (info.subscription_count > 0).into());
    if attrs.user_count {
        out.insert("user_count".into(), info.user_count.into());
    }
    if attrs.subscription_count {
        out.insert("subscription_count".into(), info.subscription_count.into());
    }
    if attrs.cache {
        let cache = match &info.cache {
            Some((event, ttl)) => {
                json!({ "event": &*event.event, "data": &*event.data, "ttl": ttl.as_secs() })
            }
            None => Value::Null,
        };
        out.insert("cache".into(), cache);
    }
    Ok(ok_json(Value::Object(out)))
}

pub(super) async fn users(
    req: HttpRequest,
    body: Body,
    path: web::Path<(String, String)>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (signed, name) = channel_request(&req, &body, &state, path.into_inner())?;
    if name.kind() != ChannelKind::Presence {
        return Err(bad_request(
            "Users can only be listed for presence channels",
        ));
    }
    let users: Vec<Value> = state
        .adapter
        .members(&signed.app, &name)
        .await?
        .iter()
        .map(|id| json!({ "id": id.as_str() }))
        .collect();
    Ok(ok_json(json!({ "users": users })))
}
