fn main() {
    eprintln!("lastmile-agent: not built yet");
    std::process::exit(2);
}
