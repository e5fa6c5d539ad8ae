//! An agent that reverses its input, on the Rust SDK:
//! `cargo run -p pantheon-agent --example reverse -- AGENT_KEY_FILE FEDERATION_PUBLIC_KEY PORT`
//! (then `pantheon agents register reverser --capability reverse --public-key … --url
//! http://127.0.0.1:PORT/`).

use pantheon_agent::Agent;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(key_file), Some(federation), Some(port)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: reverse AGENT_KEY_FILE FEDERATION_PUBLIC_KEY PORT".into());
    };
    let key = events::KeyPair::load(std::path::Path::new(&key_file))?;
    let federation: events::PublicKey = serde_json::from_value(serde_json::Value::String(federation))?;
    let agent = Agent::new("reverser", key, federation).capability("reverse", |task| {
        Ok(serde_json::json!(task.input.as_str().unwrap_or_default().chars().rev().collect::<String>()))
    });
    eprintln!("reverser listening on 127.0.0.1:{port}, public key {}", agent.public_key());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    agent.serve(listener).await?;
    Ok(())
}
