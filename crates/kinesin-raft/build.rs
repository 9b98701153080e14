//! Generates the cluster transport from proto/raft.proto with a vendored protoc, so building needs
//! no system protobuf compiler.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=../../proto/raft.proto");
    // The simulation test defines `getrandom` to make runs repeat; exported, it is also what
    // libraries that look the function up at run time (dlsym) find.
    println!("cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=getrandom");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["../../proto/raft.proto"], &["../../proto"])?;
    Ok(())
}
