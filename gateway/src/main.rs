use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = gateway::Config::parse();
    common::telemetry::init(
        gateway::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    let listener = common::server::bind(config.bind_addr).await?;
    gateway::run(config, listener).await
}
