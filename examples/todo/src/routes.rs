//! The demo's HTTP routes, as the Rails app had them.
//!
//! `GET /` creates a list and redirects to it; `GET /{token}` serves its page;
//! `GET|POST /{token}/items(.json)` and `GET|PUT|PATCH|DELETE /{token}/items/{id}(.json)`
//! speak the original JSON. Each handler extracts, calls the store, announces the change
//! through `trigger` (after the write, before the response; a failure is only logged) and
//! maps the result. A `socket_id` query parameter is accepted everywhere and only used to
//! pick the connection to leave out.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::AppError;
use crate::model::{ItemChanges, List};
use crate::page::{self, BrowserPusher, Frontend};
use crate::socket_id::SocketId;
use crate::store::{Store, StoreError};
use crate::token;
use crate::trigger::{Change, Trigger};

/// Everything a request handler needs; built once, shared by all workers.
pub struct State {
    /// Lists and items.
    pub store: Store,
    /// Publishes changes to herald.
    pub trigger: Trigger,
    /// Which front-end the pages load.
    pub frontend: Frontend,
    /// The browser's Pusher settings.
    pub pusher: BrowserPusher,
}

type Shared = web::Data<State>;

/// Registers the list and item routes (after the static ones).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(new_list))
        .route("/{token}", web::get().to(show_list));
    for collection in ["/{token}/items", "/{token}/items.json"] {
        cfg.service(
            web::resource(collection)
                .route(web::get().to(index))
                .route(web::post().to(create)),
        );
    }
    cfg.service(
        web::resource("/{token}/items/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::patch().to(update))
            .route(web::delete().to(destroy)),
    );
}

impl State {
    /// Runs a store call on the blocking pool.
    async fn with_store<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        web::block(move || f(&store))
            .await
            .map_err(|_| AppError::Internal)?
            .map_err(AppError::from)
    }

    /// The list with this token, or 404.
    async fn list(&self, token: &str) -> Result<List, AppError> {
        if !token::looks_valid(token) {
            return Err(AppError::ListNotFound);
        }
        let token = token.to_owned();
        self.with_store(move |s| s.find_list(&token))
            .await?
            .ok_or(AppError::ListNotFound)
    }

    /// Tells the list's other browsers; never fails the request.
    async fn announce(&self, list: &List, change: Change, req: &HttpRequest) {
        let except = SocketId::from_request(req);
        let channel = list.channel_name();
        match self
            .trigger
            .publish(&channel, &change, except.as_ref())
            .await
        {
            Ok(()) => tracing::debug!(%channel, event = change.event_name(), "triggered"),
            Err(e) => tracing::warn!(%channel, event = change.event_name(), error = %e,
                "trigger failed; the change is saved but other browsers were not told"),
        }
    }
}

/// `/{token}/items/{id}` or `…/{id}.json`: the integer id, or 404.
fn item_id(raw: &str) -> Result<i64, AppError> {
    let raw = raw.strip_suffix(".json").unwrap_or(raw);
    raw.parse::<i64>().map_err(|_| AppError::ItemNotFound)
}

async fn new_list(state: Shared) -> Result<HttpResponse, AppError> {
    let token = token::generate().map_err(|e| {
        tracing::error!(error = %e, "no randomness for a list token");
        AppError::Internal
    })?;
    let list = state.with_store(move |s| s.create_list(&token)).await?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, format!("/{}", list.token)))
        .finish())
}

async fn show_list(
    state: Shared,
    token: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let list = match state.list(&token).await {
        Ok(list) => list,
        Err(AppError::ListNotFound) => return Ok(not_found_page()),
        Err(e) => return Err(e),
    };
    let info = req.connection_info();
    let share_url = format!("{}://{}/{}", info.scheme(), info.host(), list.token);
    let html = page::render(state.frontend, &list, &share_url, &state.pusher);
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

fn not_found_page() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(
            "<!DOCTYPE html><title>No such list</title><p>There is no todo list here. \
               <a href=\"/\">Start a new list</a>.</p>\n",
        )
}

async fn index(state: Shared, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let list = state.list(&path).await?;
    let items = state.with_store(move |s| s.items(list.id)).await?;
    Ok(HttpResponse::Ok().json(items))
}

async fn create(
    state: Shared,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let list = state.list(&path).await?;
    let changes = ItemChanges::from_json(&body)?;
    let list_id = list.id;
    let item = state
        .with_store(move |s| s.create_item(list_id, &changes))
        .await?;
    state
        .announce(&list, Change::Created(item.clone()), &req)
        .await;
    Ok(HttpResponse::Ok().json(item))
}

async fn show(state: Shared, path: web::Path<(String, String)>) -> Result<HttpResponse, AppError> {
    let (token, id) = path.into_inner();
    let list = state.list(&token).await?;
    let id = item_id(&id)?;
    let item = state.with_store(move |s| s.item(list.id, id)).await?;
    Ok(HttpResponse::Ok().json(item.ok_or(AppError::ItemNotFound)?))
}

async fn update(
    state: Shared,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let (token, id) = path.into_inner();
    let list = state.list(&token).await?;
    let id = item_id(&id)?;
    let changes = ItemChanges::from_json(&body)?;
    let list_id = list.id;
    let item = state
        .with_store(move |s| s.update_item(list_id, id, &changes))
        .await?
        .ok_or(AppError::ItemNotFound)?;
    state
        .announce(&list, Change::Updated(item.clone()), &req)
        .await;
    Ok(HttpResponse::Ok().json(item))
}

async fn destroy(
    state: Shared,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let (token, id) = path.into_inner();
    let list = state.list(&token).await?;
    let id = item_id(&id)?;
    let list_id = list.id;
    if !state
        .with_store(move |s| s.delete_item(list_id, id))
        .await?
    {
        return Err(AppError::ItemNotFound);
    }
    state.announce(&list, Change::Destroyed(id), &req).await;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_take_an_optional_json_suffix() {
        assert_eq!(item_id("12").ok(), Some(12));
        assert_eq!(item_id("12.json").ok(), Some(12));
        assert!(item_id("abc.json").is_err());
        assert!(item_id("12.xml").is_err());
    }
}
