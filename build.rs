// Build-time C: the long-double shim used by INCRBYFLOAT and blocking timeouts (see
// csrc/longdouble.c for why), and Lua 5.1 patched as Redis embeds it (see build/lua51.rs).
#[path = "build/lua51.rs"]
mod lua51;

fn main() {
    println!("cargo:rerun-if-changed=csrc/longdouble.c");
    cc::Build::new()
        .file("csrc/longdouble.c")
        .opt_level(2)
        .compile("redcell_ld");
    lua51::build();
}
