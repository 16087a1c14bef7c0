//! Generates the CRI v1 client from upstream's `api.proto` (k8s.io/cri-api, runtime.v1),
//! vendored under proto/.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/api.proto"], &["proto"])?;
    Ok(())
}
