use clap::Parser;

fn main() {
    focal::inference::runtime::disable_telemetry();
    focal::render::quiet_headless_graphics();
    let cli = focal::cli::Cli::parse();
    focal::init_logging(cli.verbose);
    match focal::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
