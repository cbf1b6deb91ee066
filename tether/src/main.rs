//! The tether binary: pid 1 of every container VM (see the library for what it does).

fn main() {
    tether::init_main()
}
