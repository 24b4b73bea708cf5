// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// The engine hands each event from its socket thread to the consumer's;
/// mimalloc frees across threads without contending on one arena lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    #[cfg(target_os = "linux")]
    composite_only_with_a_gpu();
    holdline_app::run();
}

/// WebKitGTK composites the page with OpenGL. Without a GPU that GL is a
/// software rasterizer, and compositing through it made every repaint of the
/// live view take 100+ ms (docs/benchmarks.md, "The app's UI"); plain
/// software rendering repaints in a frame. So without a GPU render node,
/// and unless the user chose otherwise, compositing is turned off.
#[cfg(target_os = "linux")]
fn composite_only_with_a_gpu() {
    const SWITCH: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
    let has_gpu = std::fs::read_dir("/dev/dri")
        .map(|nodes| {
            nodes
                .flatten()
                .any(|node| node.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false);
    if !has_gpu && std::env::var_os(SWITCH).is_none() {
        // SAFETY: the first thing `main` does; no other thread exists yet
        // that could read the environment concurrently.
        unsafe { std::env::set_var(SWITCH, "1") };
    }
}
