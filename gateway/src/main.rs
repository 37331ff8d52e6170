use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = gateway::Config::parse();
    common::telemetry::init(
        gateway::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    let listener = std::net::TcpListener::bind(config.bind_addr)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.bind_addr))?;
    tracing::info!(addr = %config.bind_addr, workers = config.workers, "starting");
    let workers = config.workers;
    gateway::run(config, listener, workers)
}
