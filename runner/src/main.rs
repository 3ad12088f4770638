fn main() {
    eprintln!("mailqueue-runner: not built yet");
    std::process::exit(2);
}
