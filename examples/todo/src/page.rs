//! The HTML page of one list, for our own front-end or for the original 2011 one.
//!
//! Owns filling the templates: the list path, channel name and share URL, and the browser's
//! Pusher settings (app key, herald's WebSocket host and port). For the original front-end it
//! also inlines `templates/pusher-shim.js` between `pusher.js` and `application.js`, which
//! points whichever pusher library the folder holds at herald (spec: todo-demo §8 B.4).
//! No I/O: templates are compiled in.

use serde_json::json;

use crate::config::WsEndpoint;
use crate::model::List;

const OURS: &str = include_str!("../frontend/src/index.html");
const ORIGINAL: &str = include_str!("../templates/original.html");
const PUSHER_SHIM: &str = include_str!("../templates/pusher-shim.js");

/// Which front-end the pages load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    /// Ours: `frontend/src` plus libraries from `node_modules`.
    Ours,
    /// The unmodified 2011 `public/` folder given with `--frontend`.
    Original,
}

/// What the browser needs to reach herald.
#[derive(Clone, Debug)]
pub struct BrowserPusher {
    /// The app key browsers connect with.
    pub key: String,
    /// herald's WebSocket endpoint as the browser sees it.
    pub ws: WsEndpoint,
}

/// Renders the page of `list`; `share_url` is the absolute URL of the page itself.
pub fn render(frontend: Frontend, list: &List, share_url: &str, pusher: &BrowserPusher) -> String {
    let settings = json!({
        "key": pusher.key,
        "wsHost": pusher.ws.host,
        "wsPort": pusher.ws.port,
        "forceTLS": pusher.ws.tls,
        "listPath": format!("/{}", list.token),
        "channel": list.channel_name(),
    });
    let template = match frontend {
        Frontend::Ours => OURS,
        Frontend::Original => ORIGINAL,
    };
    template
        .replace("{{pusher_shim}}", PUSHER_SHIM)
        .replace("{{settings}}", &script_json(&settings))
        .replace("{{share_url}}", &escape_html(share_url))
}

/// JSON that is safe inside a `<script>` element (no `</script>`, no `<!--`).
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Escapes text for an HTML attribute or element.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pusher() -> BrowserPusher {
        BrowserPusher {
            key: "k".into(),
            ws: WsEndpoint {
                host: "127.0.0.1".into(),
                port: 6001,
                tls: false,
            },
        }
    }

    fn list() -> List {
        List {
            id: 1,
            token: "AbC".into(),
        }
    }

    #[test]
    fn original_page_loads_scripts_in_order_with_the_shim_before_application_js() {
        let page = render(Frontend::Original, &list(), "http://h/AbC", &pusher());
        let order = [
            "/javascripts/underscore.js",
            "/javascripts/jquery.js",
            "/javascripts/backbone.js",
            "/javascripts/backpusher.js",
            "/javascripts/pusher.js",
            "herald-pusher-shim",
            "/javascripts/application.js",
        ];
        let positions: Vec<usize> = order.iter().filter_map(|s| page.find(s)).collect();
        assert_eq!(positions.len(), order.len(), "{page}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        assert!(page.contains(r#""channel":"list-production-AbC""#));
        assert!(
            page.contains("<%= id %>"),
            "underscore templates reach the browser"
        );
        assert!(!page.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn our_page_carries_settings_and_escapes_the_share_url() {
        let page = render(Frontend::Ours, &list(), "http://h/AbC?\"<x>", &pusher());
        assert!(page.contains(r#""listPath":"/AbC""#));
        assert!(page.contains("http://h/AbC?&quot;&lt;x&gt;"));
        assert!(!page.contains("{{"));
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        assert_eq!(script_json(&json!("</script>")), r#""\u003c/script\u003e""#);
    }
}
