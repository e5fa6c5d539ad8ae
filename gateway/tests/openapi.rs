//! The committed OpenAPI document (`schemas/openapi.json`) is the one the code serves.
//! After an intended API change: `UPDATE_OPENAPI=1 cargo test -p gateway --test openapi`.

use std::path::PathBuf;

#[test]
fn the_committed_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/openapi.json");
    let generated = gateway::openapi::document_text();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, generated).expect("write schemas/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/openapi.json differs from the API the code serves; if the change is intended, run \
         UPDATE_OPENAPI=1 cargo test -p gateway --test openapi and commit the file"
    );
    let document: serde_json::Value = serde_json::from_str(generated).expect("json");
    assert_eq!(document["openapi"], "3.1.0");
    // Every component a document refers to exists.
    let text = generated;
    for reference in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(document["components"]["schemas"].get(name).is_some(), "dangling $ref to {name}");
    }
}
