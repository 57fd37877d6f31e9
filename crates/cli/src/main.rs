//! `groupchat`: every SDK call from a shell (lands with the SDK issue).

fn main() {
    eprintln!("groupchat: the command-line client is not built yet; see docs/ARCHITECTURE.md");
    std::process::exit(2);
}
