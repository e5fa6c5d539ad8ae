//! The committed JSON Schemas under `schemas/events/` are generated from the Rust types; this test
//! fails when the two drift. Regenerate with `PANTHEON_UPDATE_SCHEMAS=1 cargo test -p events --test schemas`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use events::signals::{FeedbackEvent, HeartbeatEvent};
use events::{AgentEvent, TaskEvent, WorkflowEvent};

fn generated() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let all = [
        ("task", TaskEvent::payload_schemas()),
        ("agent", AgentEvent::payload_schemas()),
        ("workflow", WorkflowEvent::payload_schemas()),
        ("workflowdef", events::DefinitionEvent::payload_schemas()),
        ("heartbeat", HeartbeatEvent::payload_schemas()),
        ("feedback", FeedbackEvent::payload_schemas()),
        ("policy", events::policy::PolicyEvent::payload_schemas()),
    ];
    for (category, schemas) in all {
        for (event_type, version, schema) in schemas {
            let mut value = schema.to_value();
            if let Some(object) = value.as_object_mut() {
                object.insert(
                    "$id".into(),
                    format!("https://pantheon.dev/schemas/events/{event_type}.json").into(),
                );
                object.insert("x-pantheon-category".into(), category.into());
                object.insert("x-pantheon-event-type".into(), event_type.into());
                object.insert("x-pantheon-schema-version".into(), version.into());
            }
            let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
            files.insert(format!("{event_type}.json"), text);
        }
    }
    files
}

#[test]
fn committed_event_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/events");
    let files = generated();
    if std::env::var_os("PANTHEON_UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut committed = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("schemas/events exists: run with PANTHEON_UPDATE_SCHEMAS=1") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        committed.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    let generated_names: Vec<_> = files.keys().collect();
    let committed_names: Vec<_> = committed.keys().collect();
    assert_eq!(generated_names, committed_names, "schema files added or removed: regenerate");
    for (name, text) in &files {
        assert_eq!(
            &committed[name], text,
            "schemas/events/{name} drifted from the Rust type: rerun with PANTHEON_UPDATE_SCHEMAS=1"
        );
    }
}

/// The JSON Schema of a workflow definition (`schemas/workflow-definition.json`): what
/// `POST /workflows` and `pantheon workflow register` take, in JSON or YAML.
#[test]
fn the_committed_definition_schema_matches_the_type() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/workflow-definition.json");
    let mut value = schemars::schema_for!(events::workflow::Definition).to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("$id".into(), "https://pantheon.dev/schemas/workflow-definition.json".into());
    }
    let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
    if std::env::var_os("PANTHEON_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("run with PANTHEON_UPDATE_SCHEMAS=1");
    assert_eq!(committed, text, "schemas/workflow-definition.json drifted: regenerate");
}
