use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = url_shortener::Config::parse();
    common::telemetry::init(
        url_shortener::NAME,
        &config.server.log_filter,
        config.server.log_format,
    );
    let listener = common::server::bind(config.bind_addr).await?;
    url_shortener::run(config, listener).await
}
