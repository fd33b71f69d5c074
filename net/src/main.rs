//! The `switchboard` binary (placeholder until the network adapter lands).

fn main() {
    eprintln!("switchboard: the server runtime is not built yet (see the network adapter issue)");
    std::process::exit(2);
}
