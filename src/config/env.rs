//! The `HERALD_*` environment variables: one table, [`VARIABLES`], maps each to the key it sets
//! and the parser for its kind (duration, whole number, boolean, address, file, text). The values are
//! parsed strictly, and a value that does not parse is refused naming the variable; ranges and
//! consistency are left to [`Config::validate`](super::Config::validate), which names the key.
//!
//! The environment comes in as a function, so tests pass a map; nothing here reads the process
//! environment. `HERALD_APP_ID`/`KEY`/`SECRET` (one app, all three together) are not in the
//! table: they add an app rather than set a key.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{AppConfig, Config, ConfigError, LogFormat};

/// One variable: its name, the key it sets (`section.field`) and how it sets it.
pub struct Variable {
    /// The variable, e.g. `HERALD_OUTBOUND_QUEUE`.
    pub name: &'static str,
    /// The key it sets, e.g. `server.outbound_queue`.
    pub key: &'static str,
    /// Parses the value into the key; the error says what was expected and what came.
    set: fn(&mut Config, &str) -> Result<(), String>,
}

/// A [`Variable`] for `section.field`, its value parsed by `parse`, a function whose result type
/// is inferred from the field.
macro_rules! variable {
    ($name:literal, $section:ident . $field:ident, $parse:expr) => {
        Variable {
            name: $name,
            key: concat!(stringify!($section), ".", stringify!($field)),
            set: |config, value| {
                config.$section.$field = $parse(value)?;
                Ok(())
            },
        }
    };
}

/// Every variable but the app's. `[server]` keys are `HERALD_<KEY>`, `[webhooks]` keys
/// `HERALD_WEBHOOK_<KEY>`, `[metrics]` keys `HERALD_METRICS_<KEY>` (and `enabled` is
/// `HERALD_METRICS`), `[console]` keys `HERALD_CONSOLE_<KEY>` (and `enabled` is `HERALD_CONSOLE`),
/// `[cluster]` keys `HERALD_CLUSTER_<KEY>` (and `redis_url` is
/// `HERALD_REDIS_URL`, the name soketi's and sockudo's users know).
#[rustfmt::skip] // One line a variable, as a table.
pub const VARIABLES: &[Variable] = &[
    variable!("HERALD_HOST",                    server.host,                    address),
    variable!("HERALD_PORT",                    server.port,                    number),
    variable!("HERALD_ACTIVITY_TIMEOUT",        server.activity_timeout,        duration),
    variable!("HERALD_PONG_TIMEOUT",            server.pong_timeout,            duration),
    variable!("HERALD_SHUTDOWN_TIMEOUT",        server.shutdown_timeout,        duration),
    variable!("HERALD_MAX_FRAME_BYTES",         server.max_frame_bytes,         number),
    variable!("HERALD_OUTBOUND_QUEUE",          server.outbound_queue,          number),
    variable!("HERALD_FANOUT_BACKLOG",          server.fanout_backlog,          number),
    variable!("HERALD_SLOW_CONSUMER_TIMEOUT",   server.slow_consumer_timeout,   duration),
    variable!("HERALD_SOCKET_SEND_BUFFER",      server.socket_send_buffer,      number),
    variable!("HERALD_REQUEST_BODY_TIMEOUT",    server.request_body_timeout,    duration),
    variable!("HERALD_REQUEST_BODY_MIN_RATE",   server.request_body_min_rate,   number),
    variable!("HERALD_HTTP_SESSION_TIMEOUT",    server.http_session_timeout,    duration),
    variable!("HERALD_CHANNEL_NAME_MAX_LENGTH", server.channel_name_max_length, number),
    variable!("HERALD_WORKERS",                 server.workers,                 number),
    variable!("HERALD_FANOUT_THREADS",          server.fanout_threads,          number),
    variable!("HERALD_LOG",                     server.log,                     text),
    variable!("HERALD_LOG_FORMAT",              server.log_format,              log_format),
    variable!("HERALD_TLS_CERT",                server.tls_cert,                file),
    variable!("HERALD_TLS_KEY",                 server.tls_key,                 file),
    variable!("HERALD_WEBHOOK_VACATED_DELAY",   webhooks.vacated_delay,         duration),
    variable!("HERALD_WEBHOOK_TIMEOUT",         webhooks.timeout,               duration),
    variable!("HERALD_WEBHOOK_RETRY_FOR",       webhooks.retry_for,             duration),
    variable!("HERALD_WEBHOOK_QUEUE",           webhooks.queue,                 number),
    variable!("HERALD_WEBHOOK_BATCH_WINDOW",    webhooks.batch_window,          duration),
    variable!("HERALD_METRICS",                 metrics.enabled,                boolean),
    variable!("HERALD_METRICS_HOST",            metrics.host,                   address),
    variable!("HERALD_METRICS_PORT",            metrics.port,                   number),
    variable!("HERALD_CONSOLE",                 console.enabled,                boolean),
    variable!("HERALD_CONSOLE_HOST",            console.host,                   address),
    variable!("HERALD_CONSOLE_PORT",            console.port,                   number),
    variable!("HERALD_CONSOLE_TOKEN",           console.token,                  some_text),
    variable!("HERALD_CONSOLE_SESSION_TTL",     console.session_ttl,            duration),
    variable!("HERALD_REDIS_URL",               cluster.redis_url,              some_text),
    variable!("HERALD_CLUSTER_KEY_PREFIX",      cluster.key_prefix,             text),
    variable!("HERALD_CLUSTER_HEARTBEAT_INTERVAL", cluster.heartbeat_interval,  duration),
    variable!("HERALD_CLUSTER_NODE_TIMEOUT",    cluster.node_timeout,           duration),
];

/// The app variables, set all three together or not at all.
const APP: [&str; 3] = ["HERALD_APP_ID", "HERALD_APP_KEY", "HERALD_APP_SECRET"];

/// Sets what the environment sets, over what the file did.
pub(super) fn apply(
    config: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for variable in VARIABLES {
        if let Some(value) = env(variable.name) {
            (variable.set)(config, &value).map_err(|problem| ConfigError::Env {
                name: variable.name,
                problem,
            })?;
        }
    }
    match APP.map(env) {
        [None, None, None] => {}
        [Some(id), Some(key), Some(secret)] => {
            config.apps.retain(|a| a.id != id);
            config.apps.push(AppConfig {
                id,
                key,
                secret,
                ..AppConfig::default()
            });
        }
        _ => {
            return Err(ConfigError::Env {
                name: APP[0],
                problem: format!("{} must be set together", APP.join(", ")),
            })
        }
    }
    Ok(())
}

/// A duration as in the TOML file (humantime: `120s`, `250ms`, `5m`, `1h 30m`).
fn duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| {
        format!("expected a duration such as \"30s\" or \"250ms\", got {value:?} ({e})")
    })
}

/// A whole number in decimal digits only (no sign, no spaces), in the range of `T`.
fn number<T: TryFrom<u64>>(value: &str) -> Result<T, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a whole number, got {value:?}"));
    }
    let too_large = || format!("{value:?} is too large");
    let n: u64 = value.parse().map_err(|_| too_large())?;
    T::try_from(n).map_err(|_| too_large())
}

/// `true` or `false`, as in the TOML file.
fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

/// An IPv4 or IPv6 address.
fn address(value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| format!("expected an IP address, got {value:?}"))
}

/// A file path, not empty (the file is read at start-up, not here).
fn file(value: &str) -> Result<Option<PathBuf>, String> {
    match value {
        "" => Err("expected a file path, got \"\"".into()),
        path => Ok(Some(PathBuf::from(path))),
    }
}

fn text(value: &str) -> Result<String, String> {
    Ok(value.to_owned())
}

/// Text for an optional key; empty unsets it.
fn some_text(value: &str) -> Result<Option<String>, String> {
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

fn log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected text or json, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::env;
    use super::*;

    fn load(file: &str, pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::load(Some(file), &env(pairs)).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_parses() {
        let c = load(
            "",
            &[
                ("HERALD_ACTIVITY_TIMEOUT", "90s"),
                ("HERALD_WEBHOOK_BATCH_WINDOW", "1s 500ms"),
                ("HERALD_OUTBOUND_QUEUE", "16"),
                ("HERALD_SOCKET_SEND_BUFFER", "0"),
                ("HERALD_WEBHOOK_QUEUE", "7"),
                ("HERALD_METRICS", "false"),
                ("HERALD_HOST", "::1"),
                ("HERALD_LOG", "herald=debug,info"),
                ("HERALD_LOG_FORMAT", "json"),
                ("HERALD_TLS_CERT", "/etc/herald/cert.pem"),
                ("HERALD_TLS_KEY", "key.pem"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.activity_timeout, Duration::from_secs(90));
        assert_eq!(c.server.tls_cert, Some("/etc/herald/cert.pem".into()));
        assert_eq!(c.server.tls_key, Some("key.pem".into()));
        assert_eq!(c.webhooks.batch_window, Duration::from_millis(1500));
        assert_eq!(c.server.outbound_queue, 16);
        assert_eq!(c.server.socket_send_buffer, 0);
        assert_eq!(c.webhooks.queue, 7);
        assert!(!c.metrics.enabled);
        // The development app keeps to loopback; an app from the environment does not.
        assert_eq!(c.server.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.server.log, "herald=debug,info");
        assert_eq!(c.server.log_format, LogFormat::Json);
        let app = [("HERALD_APP_ID", "1"), ("HERALD_APP_KEY", "k")];
        let c = load(
            "",
            &[
                app[0],
                app[1],
                ("HERALD_APP_SECRET", "s"),
                ("HERALD_HOST", "::1"),
            ],
        );
        assert_eq!(c.unwrap().server.host, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_bad_value_names_the_variable() {
        let cases = [
            (
                "HERALD_OUTBOUND_QUEUE",
                "ten",
                "expected a whole number, got \"ten\"",
            ),
            (
                "HERALD_OUTBOUND_QUEUE",
                "-1",
                "expected a whole number, got \"-1\"",
            ),
            (
                "HERALD_WORKERS",
                "+4",
                "expected a whole number, got \"+4\"",
            ),
            ("HERALD_FANOUT_BACKLOG", " 10", "expected a whole number"),
            ("HERALD_PORT", "65536", "\"65536\" is too large"),
            ("HERALD_ACTIVITY_TIMEOUT", "120", "expected a duration"),
            ("HERALD_WEBHOOK_TIMEOUT", "soon", "expected a duration"),
            (
                "HERALD_METRICS",
                "yes",
                "expected true or false, got \"yes\"",
            ),
            ("HERALD_METRICS", "TRUE", "expected true or false"),
            ("HERALD_METRICS_HOST", "localhost", "expected an IP address"),
            (
                "HERALD_LOG_FORMAT",
                "JSON",
                "expected text or json, got \"JSON\"",
            ),
            ("HERALD_TLS_CERT", "", "expected a file path, got \"\""),
        ];
        for (name, value, problem) in cases {
            let err = load("", &[(name, value)]).unwrap_err();
            assert!(
                err.starts_with(&format!("{name}: ")),
                "{name}={value}: {err}"
            );
            assert!(err.contains(problem), "{name}={value}: {err}");
        }
        // Parsed, but out of range: validation names the key, as for the file.
        let err = load("", &[("HERALD_OUTBOUND_QUEUE", "0")]).unwrap_err();
        assert_eq!(err, "server.outbound_queue: must be at least 1");
        let err = load("", &[("HERALD_WEBHOOK_QUEUE", "0")]).unwrap_err();
        assert_eq!(err, "webhooks.queue: must be at least 1");
        let err = load("", &[("HERALD_TLS_CERT", "cert.pem")]).unwrap_err();
        assert_eq!(
            err,
            "server.tls_key: must be set together with server.tls_cert"
        );
        let err = load("", &[("HERALD_APP_SECRET", "s")]).unwrap_err();
        assert!(err.starts_with("HERALD_APP_ID: "), "{err}");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = "[server]\noutbound_queue = 8\npong_timeout = \"5s\"\nlog_format = \"json\"\n\
                    [webhooks]\nretry_for = \"1m\"\n";
        let c = load(file, &[]).unwrap();
        assert_eq!(c.server.outbound_queue, 8);
        assert_eq!(c.server.log_format, LogFormat::Json);
        let c = load(
            file,
            &[
                ("HERALD_OUTBOUND_QUEUE", "64"),
                ("HERALD_WEBHOOK_RETRY_FOR", "10s"),
                ("HERALD_LOG_FORMAT", "text"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.outbound_queue, 64);
        assert_eq!(c.webhooks.retry_for, Duration::from_secs(10));
        assert_eq!(c.server.log_format, LogFormat::Text);
        // What the environment leaves alone comes from the file.
        assert_eq!(c.server.pong_timeout, Duration::from_secs(5));
    }

    #[test]
    fn printed_config_with_environment_values_loads_back() {
        let c = load(
            "",
            &[
                ("HERALD_SLOW_CONSUMER_TIMEOUT", "1s 250ms"),
                ("HERALD_FANOUT_THREADS", "3"),
                ("HERALD_LOG_FORMAT", "json"),
                ("HERALD_WEBHOOK_VACATED_DELAY", "0s"),
                ("HERALD_TLS_CERT", "cert.pem"),
                ("HERALD_TLS_KEY", "key.pem"),
            ],
        )
        .unwrap();
        let printed = c.to_toml();
        assert!(printed.contains("tls_cert = \"cert.pem\""), "{printed}");
        assert!(printed.contains("log_format = \"json\""), "{printed}");
        let again = load(&printed, &[]).unwrap();
        assert_eq!(again.to_toml(), printed);
        assert_eq!(
            again.server.slow_consumer_timeout,
            Duration::from_millis(1250)
        );
        assert_eq!(again.server.log_format, LogFormat::Json);
    }

    /// Every key of `[server]`, `[webhooks]`, `[metrics]`, `[console]` and `[cluster]` has a variable named by the rule,
    /// and the README's table lists each one with its key.
    #[test]
    fn every_setting_has_a_variable_named_by_the_rule() {
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut keys = Vec::new();
        for section in ["server", "webhooks", "metrics", "console", "cluster"] {
            for field in defaults[section].as_table().unwrap().keys() {
                keys.push(format!("{section}.{field}"));
            }
        }
        // Unset by default, so not in the serialized defaults.
        keys.push("cluster.redis_url".into());
        keys.push("console.token".into());
        keys.push("server.tls_cert".into());
        keys.push("server.tls_key".into());
        let mut covered: Vec<String> = VARIABLES.iter().map(|v| v.key.to_owned()).collect();
        keys.sort();
        covered.sort();
        assert_eq!(covered, keys);
        let readme = include_str!("../../README.md");
        for v in VARIABLES {
            let (section, field) = v.key.split_once('.').unwrap();
            let expected = match (section, field) {
                ("server", _) => format!("HERALD_{}", field.to_uppercase()),
                ("webhooks", _) => format!("HERALD_WEBHOOK_{}", field.to_uppercase()),
                ("metrics", "enabled") => "HERALD_METRICS".to_owned(),
                ("metrics", _) => format!("HERALD_METRICS_{}", field.to_uppercase()),
                ("console", "enabled") => "HERALD_CONSOLE".to_owned(),
                ("console", _) => format!("HERALD_CONSOLE_{}", field.to_uppercase()),
                ("cluster", "redis_url") => "HERALD_REDIS_URL".to_owned(),
                _ => format!("HERALD_CLUSTER_{}", field.to_uppercase()),
            };
            assert_eq!(v.name, expected);
            let row = format!("| `{}` | `{}` |", v.name, v.key);
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }
}
