use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = notification_service::Config::parse();
    common::telemetry::init(
        notification_service::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    let listener = common::server::bind(config.bind_addr).await?;
    notification_service::run(config, listener).await
}
