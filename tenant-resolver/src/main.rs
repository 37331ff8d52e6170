use clap::Parser;
use tenant_resolver::config::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = tenant_resolver::Config::parse();
    common::telemetry::init(
        tenant_resolver::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    match config.command {
        Some(Command::Migrate) => tenant_resolver::migrate_command(config).await,
        None => {
            let listener = common::server::bind(config.bind_addr).await?;
            tenant_resolver::run(config, listener).await
        }
    }
}
