use clap::Parser;

fn main() {
    // `focal info | head`: a reader that stops reading ends Focal quietly, as it would `ls`.
    let panic_message = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("Broken pipe") {
            std::process::exit(141);
        }
        panic_message(info);
    }));
    focal::inference::runtime::disable_telemetry();
    focal::render::quiet_headless_graphics();
    let cli = focal::cli::Cli::parse();
    focal::init_logging(cli.verbose, cli.opens_window());
    match focal::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(focal::exit::of(&e));
        }
    }
}
