//! A WASI command (`wasi:cli/run`): a valid component that is not a Garonne plugin, for the
//! tests of `host plugin inspect`.

fn main() {
    println!("I am not a Garonne plugin");
}
