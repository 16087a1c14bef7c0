//! Generates the CRI v1 client from upstream's `api.proto` (k8s.io/cri-api, runtime.v1),
//! vendored under proto/, and the gRPC health protocol's client for grpc probes.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    println!("cargo:rerun-if-changed=proto/health.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/api.proto", "proto/health.proto"], &["proto"])?;
    Ok(())
}
