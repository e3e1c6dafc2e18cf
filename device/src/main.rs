fn main() {
    eprintln!("dermo-scope: under construction");
    std::process::exit(2);
}
