//! UndChain reference node (filled by later issues).

fn main() {
    println!("undchain-node {}", env!("CARGO_PKG_VERSION"));
}
