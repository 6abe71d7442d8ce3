//! Static files: our front-end's own scripts and stylesheet (compiled in), its libraries
//! (served from `node_modules`, never copied into the repository), and, with `--frontend`,
//! the original 2011 `public/` folder.
//!
//! Owns the URL → file mapping. Only the listed library files are reachable; the rest of
//! `node_modules` is not served.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::{web, HttpRequest, HttpResponse};

/// Our own front-end files, by URL name: (content type, contents).
const OWN: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../frontend/src/app.js"),
    ),
    (
        "realtime.js",
        "text/javascript; charset=utf-8",
        include_str!("../frontend/src/realtime.js"),
    ),
    (
        "todos.css",
        "text/css; charset=utf-8",
        include_str!("../frontend/src/todos.css"),
    ),
];

/// Library files under `/vendor/{name}`, relative to `node_modules`.
const VENDOR: &[(&str, &str)] = &[
    ("underscore.js", "underscore/underscore-umd.js"),
    ("jquery.js", "jquery/dist/jquery.js"),
    ("backbone.js", "backbone/backbone.js"),
    ("pusher.js", "pusher-js/dist/web/pusher.js"),
];

/// Where static files come from.
#[derive(Clone, Debug)]
pub struct AssetDirs {
    /// `node_modules` of `frontend/` (our libraries).
    pub node_modules: PathBuf,
    /// The original `public/` folder, when serving the 2011 front-end.
    pub original: Option<PathBuf>,
}

/// The folder holding `javascripts/application.js`: `dir` itself or `dir/public`.
pub fn original_public_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("public")]
        .into_iter()
        .find(|d| d.join("javascripts").join("application.js").is_file())
}

/// Registers the static routes.
pub fn configure(cfg: &mut web::ServiceConfig, dirs: &AssetDirs) {
    cfg.route("/assets/{name}", web::get().to(own))
        .route("/vendor/{name}", web::get().to(vendor))
        .route("/favicon.ico", web::get().to(HttpResponse::NoContent));
    if let Some(public) = &dirs.original {
        for sub in ["javascripts", "stylesheets", "images"] {
            cfg.service(Files::new(&format!("/{sub}"), public.join(sub)));
        }
    }
}

async fn own(name: web::Path<String>) -> HttpResponse {
    match OWN.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header(("Cache-Control", "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().body("no such asset\n"),
    }
}

async fn vendor(
    req: HttpRequest,
    name: web::Path<String>,
    dirs: web::Data<AssetDirs>,
) -> HttpResponse {
    let Some((_, relative)) = VENDOR.iter().find(|(n, _)| *n == name.as_str()) else {
        return HttpResponse::NotFound().body("no such library\n");
    };
    let path = dirs.node_modules.join(relative);
    match NamedFile::open_async(&path).await {
        Ok(file) => file.into_response(&req),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "front-end library missing");
            HttpResponse::NotFound().body(format!(
                "{} is missing: run `npm ci` in examples/todo/frontend (or pass --node-modules)\n",
                relative
            ))
        }
    }
}
