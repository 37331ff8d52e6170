use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = user_service::Config::parse();
    common::telemetry::init(
        user_service::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    let listener = common::server::bind(config.bind_addr).await?;
    user_service::run(config, listener).await
}
