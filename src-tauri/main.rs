// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// The engine hands each event from its socket thread to the consumer's;
/// mimalloc frees across threads without contending on one arena lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    holdline_app::run();
}
