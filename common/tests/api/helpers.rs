use common::config::ServerArgs;
use common::telemetry::LogFormat;

pub fn server_args() -> ServerArgs {
    ServerArgs {
        log_filter: "info".into(),
        log_format: LogFormat::Text,
        request_timeout_secs: 2,
        body_limit_bytes: 4 * 1024,
        shutdown_grace_secs: 5,
        trusted_proxies: Default::default(),
        max_head_bytes: 16 * 1024,
        header_read_timeout_secs: 10,
    }
}
