use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = analytics_service::Config::parse();
    common::telemetry::init(
        analytics_service::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    let listener = common::server::bind(config.bind_addr).await?;
    analytics_service::run(config, listener).await
}
