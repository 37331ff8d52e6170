use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = tenant_resolver::Config::parse();
    common::telemetry::init(
        tenant_resolver::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    let listener = common::server::bind(config.bind_addr).await?;
    tenant_resolver::run(config, listener).await
}
