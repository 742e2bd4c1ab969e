// A Rust leak: Box::leak of a struct that owns a String and a Vec (one definitely lost block
// that owns two indirectly lost ones), made in a function of a module.
mod store {
    pub struct Config {
        pub name: String,
        pub values: Vec<u64>,
    }

    #[inline(never)]
    pub fn make(i: u64) -> &'static Config {
        let config = Box::new(Config { name: format!("config-{}", i), values: vec![i; 100] }); // @leak:rust_box
        Box::leak(config)
    }
}

fn main() {
    let config = store::make(7);
    println!("{} {}", config.name, config.values.len());
}
