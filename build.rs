// Builds the long-double shim used by INCRBYFLOAT and blocking timeouts (see csrc/longdouble.c for why).
fn main() {
    println!("cargo:rerun-if-changed=csrc/longdouble.c");
    cc::Build::new()
        .file("csrc/longdouble.c")
        .opt_level(2)
        .compile("redcell_ld");
}
