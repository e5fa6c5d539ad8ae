//! The OpenAPI 3.1 document, built from the same Rust types the handlers use (their JSON
//! Schemas come from `schemars`, in the 2020-12 dialect OpenAPI 3.1 uses), served at
//! `/openapi.json` and committed as `schemas/openapi.json` (a test fails when they drift).

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::admission::{SubmitResponse, TaskRequest};
use crate::error::ErrorBody;
use crate::routes::agents::{AgentPage, AgentView};
use crate::routes::system::Health;
use crate::routes::tasks::{CancelRequest, EventsPage, TaskPage};
use crate::stream::{StreamCommand, StreamFrame};
use crate::task::TaskView;

/// Collects component schemas: requests with the deserialize contract, responses with the
/// serialize one.
struct Components {
    requests: SchemaGenerator,
    responses: SchemaGenerator,
}

impl Components {
    fn new() -> Self {
        let settings = || {
            SchemaSettings::draft2020_12().with(|s| {
                s.definitions_path = "/components/schemas/".into();
                s.meta_schema = None;
            })
        };
        Self {
            requests: settings().for_deserialize().into_generator(),
            responses: settings().for_serialize().into_generator(),
        }
    }

    fn request<T: JsonSchema>(&mut self) -> Value {
        self.requests.subschema_for::<T>().to_value()
    }

    fn response<T: JsonSchema>(&mut self) -> Value {
        self.responses.subschema_for::<T>().to_value()
    }

    fn into_map(mut self) -> Map<String, Value> {
        let mut all = self.requests.take_definitions(true);
        all.extend(self.responses.take_definitions(true));
        all
    }
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// The error responses every authenticated operation may give, plus `extra` codes.
fn errors(components: &mut Components, extra: &[(&str, &str)]) -> Map<String, Value> {
    let schema = components.response::<ErrorBody>();
    let mut out = Map::new();
    let mut add = |code: &str, description: &str| {
        let mut response = json!({ "description": description, "content": json_content(schema.clone()) });
        if code == "429" {
            response["headers"] = json!({ "Retry-After": { "description": "Seconds to wait.", "schema": { "type": "integer" } } });
        }
        out.insert(code.to_string(), response);
    };
    add("400", "Invalid parameter or body (`invalid_parameter`, `invalid_body`, `unknown_field`).");
    add("401", "No valid bearer token (`unauthenticated`).");
    add("403", "The token lacks a permission (`forbidden`).");
    add("406", "The `Accept` header admits none of the types the endpoint answers in (`not_acceptable`).");
    add("429", "Rate limited (`rate_limited`).");
    add("500", "The server failed (`internal`).");
    add("503", "Not ready or at a limit (`not_ready`, `overloaded`).");
    for (code, description) in extra {
        add(code, description);
    }
    out
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn id_param(description: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn format_param() -> Value {
    query_param(
        "format",
        "`json`, `markdown` or `html`; overrides `Accept`.",
        json!({ "type": "string", "enum": ["json", "markdown", "html"] }),
    )
}

fn task_content(schema: Value) -> Value {
    json!({
        "application/json": { "schema": schema },
        "text/markdown": { "schema": { "type": "string" } },
        "text/html": { "schema": { "type": "string" } }
    })
}

fn operation(
    summary: &str,
    id: &str,
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Map<String, Value>,
) -> Value {
    let mut op = json!({
        "summary": summary,
        "operationId": id,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn with(mut base: Map<String, Value>, code: &str, response: Value) -> Map<String, Value> {
    base.insert(code.to_string(), response);
    base
}

/// Builds the document.
pub fn document() -> Value {
    let mut c = Components::new();
    let task_request = c.request::<TaskRequest>();
    let cancel_request = c.request::<CancelRequest>();
    let _ = c.request::<StreamCommand>();
    let _ = c.response::<StreamFrame>();
    let submit_response = c.response::<SubmitResponse>();
    let task_view = c.response::<TaskView>();
    let events_page = c.response::<EventsPage>();
    let task_page = c.response::<TaskPage>();
    let agent_view = c.response::<AgentView>();
    let agent_page = c.response::<AgentPage>();
    let register_agent = c.request::<crate::routes::agents::RegisterAgent>();
    let change_agent = c.request::<crate::routes::agents::ChangeAgentRequest>();
    let registered = c.response::<crate::routes::agents::Registered>();
    let health = c.response::<Health>();
    let dead_webhooks = c.response::<crate::routes::webhooks::DeadWebhooks>();
    let redelivery = c.response::<crate::routes::webhooks::Redelivery>();
    let reloaded = c.response::<crate::config::ReloadOutcome>();
    let workflow_ops = workflow_operations(&mut c);
    let work = c.response::<crate::routes::work::Work>();
    let work_accepted = c.response::<crate::routes::work::WorkAccepted>();
    let work_result = c.request::<events::SignedResult>();
    let work_progress = c.request::<crate::routes::work::WorkProgress>();
    let work_failure = c.request::<crate::routes::work::WorkFailure>();
    let error_body = c.response::<ErrorBody>();

    let idempotency = json!({
        "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "Repeating a key returns the original task; the same key with another body is 422.",
        "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" }
    });
    let json_body =
        |schema: Value, required: bool| json!({ "required": required, "content": json_content(schema) });
    let id_task = id_param("The task's id.");
    let version = json!({ "type": "integer", "minimum": 1, "maximum": crate::config::VERSION_MAX });
    let page = |max: usize| json!({ "type": "integer", "minimum": 1, "maximum": max });

    let submit = operation(
        "Submit a task; the result comes later (GET /tasks/{id}, the stream, or a webhook).",
        "submitTask",
        vec![idempotency.clone()],
        Some(json_body(task_request.clone(), true)),
        with(
            errors(
                &mut c,
                &[
                    ("413", "Body too large."),
                    ("415", "Not JSON."),
                    ("422", "Idempotency key reused, or webhook refused."),
                ],
            ),
            "202",
            json!({ "description": "Admitted.", "headers": { "Location": { "schema": { "type": "string" } } }, "content": json_content(submit_response) }),
        ),
    );
    let execute = operation(
        "Run a task and wait for its end (up to its timeout_ms, default 30 s).",
        "executeTask",
        vec![idempotency, format_param()],
        Some(json_body(task_request, true)),
        with(
            errors(
                &mut c,
                &[
                    ("413", "Body too large."),
                    ("415", "Not JSON."),
                    ("422", "Idempotency key reused, or webhook refused."),
                    (
                        "504",
                        "The task did not finish in time; it goes on (`execute_timeout` with the task id).",
                    ),
                ],
            ),
            "200",
            json!({ "description": "The finished task.", "content": task_content(task_view.clone()) }),
        ),
    );
    // A refused task answers 422 with the task (its end reason says why); a reused key or a
    // refused webhook, 422 with an error.
    let mut execute = execute;
    let refused = &mut execute["responses"]["422"];
    let error_schema = refused["content"]["application/json"]["schema"].clone();
    refused["description"] = json!(
        "The task was refused (the task, `status: rejected`, with `end_reason`), or the idempotency key reused or the webhook refused (an error)."
    );
    refused["content"] = task_content(json!({ "oneOf": [task_view.clone(), error_schema] }));
    let get_task = operation(
        "A task's status, result and timings.",
        "getTask",
        vec![id_task.clone(), format_param()],
        None,
        with(
            errors(&mut c, &[("404", "No such task (or not yours).")]),
            "200",
            json!({ "description": "The task.", "content": task_content(task_view.clone()) }),
        ),
    );
    let get_events = operation(
        "A task's history, paged.",
        "getTaskEvents",
        vec![
            id_task.clone(),
            query_param("from_version", "First version to return (default 1).", version.clone()),
            query_param(
                "limit",
                "Events per page (default and maximum 500).",
                page(crate::config::EVENTS_PAGE_COUNT_MAX),
            ),
        ],
        None,
        with(
            errors(&mut c, &[("404", "No such task (or not yours).")]),
            "200",
            json!({ "description": "A page of events.", "content": json_content(events_page) }),
        ),
    );
    let cancel = operation(
        "Cancel a task that has not ended.",
        "cancelTask",
        vec![id_task.clone()],
        Some(json_body(cancel_request, false)),
        with(
            errors(
                &mut c,
                &[
                    ("404", "No such task (or not yours)."),
                    ("409", "The task has ended (`task_finished`)."),
                    ("413", "Body too large."),
                    ("415", "Not JSON."),
                ],
            ),
            "200",
            json!({ "description": "The cancelled task.", "content": json_content(task_view.clone()) }),
        ),
    );
    let list = operation(
        "Tasks the caller may read, newest first, filtered and paged.",
        "listTasks",
        vec![
            query_param(
                "status",
                "Only tasks in this status.",
                json!({ "type": "string", "enum": [
                "new", "submitted", "screened", "context_ready", "waiting", "agent_selected", "sealed", "running",
                "result_received", "verified", "stored", "egress_screened", "attempt_failed", "retrying",
                "completed", "failed", "rejected", "cancelled"] }),
            ),
            query_param("capability", "Only tasks asking for this capability.", json!({ "type": "string" })),
            query_param(
                "agent",
                "Only tasks whose current attempt runs on this agent.",
                json!({ "type": "string" }),
            ),
            query_param(
                "submitted_after_ms",
                "Submitted at or after (ms since the epoch).",
                json!({ "type": "integer" }),
            ),
            query_param(
                "submitted_before_ms",
                "Submitted before (ms since the epoch).",
                json!({ "type": "integer" }),
            ),
            query_param(
                "cursor",
                "The previous page's next_cursor.",
                json!({ "type": "string", "pattern": projections::TASK_CURSOR_PATTERN }),
            ),
            query_param(
                "limit",
                "Tasks per page (default 50, maximum 100).",
                page(crate::config::TASKS_PAGE_COUNT_MAX),
            ),
        ],
        None,
        with(
            errors(&mut c, &[]),
            "200",
            json!({ "description": "A page of tasks.", "content": json_content(task_page) }),
        ),
    );
    let stream = operation(
        "A task's events as they happen: WebSocket with an upgrade request, Server-Sent Events otherwise. History first; ends after the final event.",
        "streamTask",
        vec![id_task, query_param("from_version", "First version to send (default 1).", version.clone())],
        None,
        with(
            with(
                errors(&mut c, &[("404", "No such task (or not yours).")]),
                "101",
                json!({ "description": "WebSocket: frames are StreamFrame JSON; the client may send StreamCommand." }),
            ),
            "200",
            json!({ "description": "Server-Sent Events: one event per task event (id = version, event = type, data = EventView).", "content": { "text/event-stream": { "schema": {
                "type": "object",
                "description": "One server-sent event: `data` is an EventView as JSON (an ErrorBody for `event: error`).",
                "properties": { "id": { "type": "string" }, "event": { "type": "string" }, "data": { "type": "string" }, "retry": { "type": "integer" } }
            } } } }),
        ),
    );
    let agents = operation(
        "The federation's agents (operators and admins: `read_all`).",
        "listAgents",
        vec![
            query_param(
                "cursor",
                "The previous page's next_cursor.",
                json!({ "type": "integer", "minimum": 0, "maximum": crate::config::VERSION_MAX }),
            ),
            query_param(
                "limit",
                "Agents per page (default and maximum 100).",
                page(crate::routes::agents::AGENTS_PAGE_COUNT_MAX),
            ),
        ],
        None,
        with(
            errors(&mut c, &[]),
            "200",
            json!({ "description": "A page of agents.", "content": json_content(agent_page) }),
        ),
    );
    let agent = operation(
        "One agent.",
        "getAgent",
        vec![id_param("The agent's id.")],
        None,
        with(
            errors(&mut c, &[("404", "No such agent.")]),
            "200",
            json!({ "description": "The agent.", "content": json_content(agent_view.clone()) }),
        ),
    );
    let register = operation(
        "Register an HTTP or NATS agent, or renew its passport (`manage_agents`: operators and admins). Matching can choose it a moment later, without a restart.",
        "registerAgent",
        vec![],
        Some(json_body(register_agent, true)),
        with(
            errors(
                &mut c,
                &[
                    (
                        "409",
                        "The agent is retired, or it is a NATS agent and the federation runs without NATS (`agent_conflict`).",
                    ),
                    ("413", "Body too large."),
                    ("415", "Not JSON."),
                ],
            ),
            "201",
            json!({ "description": "Registered: the passport in force.", "content": json_content(registered) }),
        ),
    );
    let change = |c: &mut Components, summary: &str, id: &str| {
        operation(
            summary,
            id,
            vec![id_param("The agent's id.")],
            Some(json_body(change_agent.clone(), false)),
            with(
                errors(
                    c,
                    &[
                        ("404", "No such agent."),
                        ("409", "The agent's state does not allow it (`agent_conflict`)."),
                        ("413", "Body too large."),
                        ("415", "Not JSON."),
                    ],
                ),
                "200",
                json!({ "description": "The agent after the change.", "content": json_content(agent_view.clone()) }),
            ),
        )
    };
    let suspend = change(
        &mut c,
        "Suspend an agent: out of matching until reinstated (`manage_agents`).",
        "suspendAgent",
    );
    let reinstate = change(&mut c, "Reinstate a suspended agent (`manage_agents`).", "reinstateAgent");
    let retire = change(&mut c, "Retire an agent for good (`manage_agents`).", "retireAgent");
    let list_dead = operation(
        "Webhooks given up after their attempts and not asked for again, newest first (`read_all`).",
        "listDeadWebhooks",
        vec![query_param(
            "limit",
            "How many (default 100).",
            page(crate::routes::webhooks::DEAD_WEBHOOKS_PAGE_COUNT_MAX),
        )],
        None,
        with(
            errors(&mut c, &[]),
            "200",
            json!({ "description": "The dead letters.", "content": json_content(dead_webhooks) }),
        ),
    );
    let redeliver = operation(
        "Deliver a dead-lettered webhook again: a new round of attempts with the same webhook-id, recorded on the task (`manage_webhooks`: operators and admins).",
        "redeliverWebhook",
        vec![id_param("The task's id.")],
        None,
        with(
            errors(
                &mut c,
                &[
                    ("404", "No such task."),
                    (
                        "409",
                        "The task's webhook is not dead-lettered: none asked, delivered, still being attempted, or asked for again (`webhook_conflict`).",
                    ),
                ],
            ),
            "202",
            json!({ "description": "Recorded; the dispatcher delivers it.", "content": json_content(redelivery) }),
        ),
    );
    let agent_param = || id_param("The agent's id (the token's subject).");
    let task_param = || json!({ "name": "task", "in": "path", "required": true, "description": "The task's id.", "schema": { "type": "string" } });
    let poll = operation(
        "A pull worker's long poll: the oldest attempt offered to the agent, leased to it (`work`: a token of role `agent` whose subject is the agent's id).",
        "pollWork",
        vec![
            agent_param(),
            query_param(
                "wait_ms",
                "How long to wait for an offer, ms (default 25,000).",
                json!({ "type": "integer", "minimum": 0, "maximum": crate::routes::work::POLL_WAIT_MS_MAX }),
            ),
            query_param(
                "lease_ms",
                "The lease asked for, ms (default 30,000).",
                json!({ "type": "integer", "minimum": crate::routes::work::LEASE_MS_RANGE.0, "maximum": crate::routes::work::LEASE_MS_RANGE.1 }),
            ),
        ],
        None,
        with(
            with(
                errors(&mut c, &[("404", "No such agent.")]),
                "204",
                json!({ "description": "Nothing was offered within the wait." }),
            ),
            "200",
            json!({ "description": "An attempt, leased.", "content": json_content(work) }),
        ),
    );
    let work_call = |c: &mut Components, summary: &str, id: &str, body: Value, required: bool| {
        operation(
            summary,
            id,
            vec![agent_param(), task_param()],
            Some(json!({ "required": required, "content": json_content(body) })),
            with(
                errors(
                    c,
                    &[
                        ("404", "No such agent or task."),
                        (
                            "409",
                            "The worker holds no lease on the task's current attempt, or the result does not answer it (`work_conflict`).",
                        ),
                        ("413", "Body too large."),
                        ("415", "Not JSON."),
                    ],
                ),
                "202",
                json!({ "description": "Passed on to the attempt.", "content": json_content(work_accepted.clone()) }),
            ),
        )
    };
    let work_result_op = work_call(
        &mut c,
        "The signed result of a leased attempt (verified by the federation as any other).",
        "postWorkResult",
        work_result,
        true,
    );
    let work_progress_op = work_call(
        &mut c,
        "Progress of a leased attempt; renews the lease.",
        "postWorkProgress",
        work_progress,
        false,
    );
    let work_fail_op =
        work_call(&mut c, "Give a leased attempt up (the agent's fault).", "failWork", work_failure, false);
    let agent_heartbeat = operation(
        "The agent is alive: renews its workers' leases and notes it in the liveness table (`work`).",
        "agentHeartbeat",
        vec![agent_param()],
        None,
        with(errors(&mut c, &[("404", "No such agent.")]), "204", json!({ "description": "Noted." })),
    );
    let reload = operation(
        "Read the configuration again (pantheon.toml, auth.json) and apply the screening policy, the rate limits and the agents' capabilities and concurrency without a restart; recorded as `policy_reloaded` (needs admin). SIGHUP does the same.",
        "reloadConfig",
        vec![],
        None,
        with(
            errors(
                &mut c,
                &[
                    ("404", "This gateway runs without a pipeline: nothing to reload here."),
                    ("422", "The configuration does not load; the one in force stays (`reload_refused`)."),
                ],
            ),
            "200",
            json!({ "description": "What changed and was applied, and what takes a restart.", "content": json_content(reloaded) }),
        ),
    );
    let metrics = operation(
        "Prometheus metrics (needs admin).",
        "metrics",
        vec![],
        None,
        with(
            errors(&mut c, &[]),
            "200",
            json!({ "description": "Text exposition format.", "content": { "text/plain": { "schema": { "type": "string" } } } }),
        ),
    );
    let public_errors = |c: &mut Components| {
        let mut map = Map::new();
        map.insert(
            "429".into(),
            json!({ "description": "Rate limited.", "content": json_content(c.response::<ErrorBody>()) }),
        );
        map
    };
    let healthz = json!({
        "summary": "The process is up.", "operationId": "healthz", "security": [],
        "responses": with(public_errors(&mut c), "200", json!({ "description": "Up.", "content": json_content(health.clone()) }))
    });
    let readyz = json!({
        "summary": "Ready when the event log and the read models answer.", "operationId": "readyz", "security": [],
        "responses": with(
            with(public_errors(&mut c), "503", json!({ "description": "The event log or the read models do not answer; the body names which.", "content": json_content(error_body.clone()) })),
            "200", json!({ "description": "Ready.", "content": json_content(health) }))
    });
    let openapi = json!({
        "summary": "This document.", "operationId": "openapi", "security": [],
        "responses": with(public_errors(&mut c), "200", json!({ "description": "OpenAPI 3.1.", "content": { "application/json": { "schema": { "type": "object" } } } }))
    });

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Pantheon gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Run tasks on a federation of agents: synchronously, asynchronously with signed webhooks (Standard Webhooks), or as a stream. Every error is JSON with a stable `code`.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [ { "bearer": [] } ],
        "paths": {
            "/tasks/submit": { "post": submit },
            "/tasks/execute": { "post": execute },
            "/tasks": { "get": list },
            "/tasks/{id}": { "get": get_task },
            "/tasks/{id}/events": { "get": get_events },
            "/tasks/{id}/cancel": { "post": cancel },
            "/tasks/{id}/stream": { "get": stream },
            "/agents": { "get": agents, "post": register },
            "/agents/{id}": { "get": agent, "delete": retire },
            "/agents/{id}/suspend": { "post": suspend },
            "/agents/{id}/reinstate": { "post": reinstate },
            "/agents/{id}/work": { "post": poll },
            "/agents/{id}/work/{task}/result": { "post": work_result_op },
            "/agents/{id}/work/{task}/progress": { "post": work_progress_op },
            "/agents/{id}/work/{task}/fail": { "post": work_fail_op },
            "/agents/{id}/heartbeat": { "post": agent_heartbeat },
            "/workflows": { "post": workflow_ops["register"] },
            "/workflows/{name}": { "get": workflow_ops["definition"] },
            "/workflows/{name}/runs": { "post": workflow_ops["start"] },
            "/runs": { "get": workflow_ops["list"] },
            "/runs/{id}": { "get": workflow_ops["get"] },
            "/runs/{id}/events": { "get": workflow_ops["events"] },
            "/runs/{id}/cancel": { "post": workflow_ops["cancel"] },
            "/runs/{id}/signals/{name}": { "post": workflow_ops["signal"] },
            "/runs/{id}/stream": { "get": workflow_ops["stream"] },
            "/webhooks/dead": { "get": list_dead },
            "/webhooks/dead/{id}/redeliver": { "post": redeliver },
            "/healthz": { "get": healthz },
            "/readyz": { "get": readyz },
            "/metrics": { "get": metrics },
            "/admin/reload": { "post": reload },
            "/openapi.json": { "get": openapi },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": c.into_map(),
        }
    })
}

/// The workflow endpoints' operations, by name.
fn workflow_operations(c: &mut Components) -> Value {
    use crate::routes::workflows as w;
    let json_body =
        |schema: Value, required: bool| json!({ "required": required, "content": json_content(schema) });
    let registered = c.response::<w::RegisteredView>();
    let definition_view = c.response::<w::DefinitionView>();
    let run_request = c.request::<w::RunRequest>();
    let run_view = c.response::<w::RunView>();
    let run_events = c.response::<Vec<w::RunEventView>>();
    let run_page = c.response::<w::RunPage>();
    let cancel_run = c.request::<w::CancelRun>();
    let definition_schema = c.request::<events::workflow::Definition>();
    let name_param = json!({ "name": "name", "in": "path", "required": true, "description": "The workflow's name.", "schema": { "type": "string" } });
    let invalid = ("422", "The definition or request cannot run: `invalid_workflow`, with the field.");
    let register = operation(
        "Register a workflow definition (`manage_workflows`): JSON, or YAML with `Content-Type: application/yaml`. A definition that differs from every registered version is a new version; the same one answers its version.",
        "registerWorkflow",
        vec![],
        Some(json!({ "required": true, "content": {
            "application/json": { "schema": definition_schema.clone() },
            "application/yaml": { "schema": definition_schema },
        }})),
        with(
            with(
                errors(c, &[invalid, ("413", "Body too large."), ("415", "Neither JSON nor YAML.")]),
                "200",
                json!({ "description": "The same definition was registered before.", "content": json_content(registered.clone()) }),
            ),
            "201",
            json!({ "description": "Registered as a new version.", "content": json_content(registered) }),
        ),
    );
    let definition = operation(
        "A workflow's versions, oldest first.",
        "getWorkflow",
        vec![name_param.clone()],
        None,
        with(
            errors(c, &[("404", "No such workflow.")]),
            "200",
            json!({ "description": "Its versions.", "content": json_content(definition_view) }),
        ),
    );
    let start = operation(
        "Start a run of a workflow's latest (or named) version (`submit`): 202 at once, or 200 when it ended within `wait_ms`. `Idempotency-Key` answers the first run.",
        "startRun",
        vec![
            name_param,
            json!({ "name": "Idempotency-Key", "in": "header", "required": false, "description": "Repeated starts with this key answer the first run.", "schema": { "type": "string" } }),
        ],
        Some(json_body(run_request, false)),
        with(
            with(
                errors(
                    c,
                    &[
                        ("404", "No such workflow or version."),
                        invalid,
                        ("413", "Body too large."),
                        ("415", "Not JSON."),
                    ],
                ),
                "200",
                json!({ "description": "The run ended within the wait.", "content": json_content(run_view.clone()) }),
            ),
            "202",
            json!({ "description": "Started; follow it at `Location`.", "content": json_content(run_view.clone()) }),
        ),
    );
    let list = operation(
        "Runs one can read, oldest first, filtered by workflow and status.",
        "listRuns",
        vec![
            query_param("name", "Only runs of this workflow.", json!({ "type": "string" })),
            query_param(
                "status",
                "Only runs in this status.",
                json!({ "type": "string", "enum": ["running", "completed", "failed", "cancelled"] }),
            ),
            query_param(
                "limit",
                "At most this many (default and most 500).",
                json!({ "type": "integer", "minimum": 1, "maximum": w::RUNS_PAGE_COUNT_MAX }),
            ),
            query_param(
                "cursor",
                "Where the previous page stopped.",
                json!({ "type": "integer", "minimum": 0 }),
            ),
        ],
        None,
        with(
            errors(c, &[]),
            "200",
            json!({ "description": "A page of runs.", "content": json_content(run_page) }),
        ),
    );
    let get = operation(
        "A run: status, output, and its step table.",
        "getRun",
        vec![id_param("The run's id.")],
        None,
        with(
            errors(c, &[("404", "No such run (or not one you may read).")]),
            "200",
            json!({ "description": "The run.", "content": json_content(run_view) }),
        ),
    );
    let events = operation(
        "A run's events, in order.",
        "getRunEvents",
        vec![id_param("The run's id.")],
        None,
        with(
            errors(c, &[("404", "No such run.")]),
            "200",
            json!({ "description": "Its events.", "content": json_content(run_events) }),
        ),
    );
    let cancel = operation(
        "Cancel a run (`cancel`): nothing starts after it; its running step tasks are cancelled.",
        "cancelRun",
        vec![id_param("The run's id.")],
        Some(json_body(cancel_run, false)),
        with(
            errors(
                c,
                &[
                    ("404", "No such run."),
                    ("409", "The run has ended (`run_conflict`)."),
                    ("415", "Not JSON."),
                ],
            ),
            "202",
            json!({ "description": "The cancel is recorded.", "content": { "application/json": { "schema": { "type": "object" } } } }),
        ),
    );
    let signal_request = c.request::<w::SignalRequest>();
    let signal = operation(
        "Send a signal to a run (`signal`, on a run one can read): an approval step waiting for it completes with the payload as its output.",
        "signalRun",
        vec![
            id_param("The run's id."),
            json!({ "name": "name", "in": "path", "required": true, "description": "The signal's name (an approval step's `signal`, `approve` by default).", "schema": { "type": "string" } }),
        ],
        Some(json_body(signal_request, false)),
        with(
            errors(
                c,
                &[
                    ("404", "No such run or step."),
                    ("409", "The run or the step has ended (`run_conflict`)."),
                    invalid,
                    ("413", "Body too large."),
                    ("415", "Not JSON."),
                ],
            ),
            "202",
            json!({ "description": "The signal is recorded.", "content": { "application/json": { "schema": { "type": "object" } } } }),
        ),
    );
    let stream = operation(
        "A run's events as they happen: WebSocket with an upgrade request, Server-Sent Events otherwise (Last-Event-ID resumes). History first; ends after the run's final event.",
        "streamRun",
        vec![
            id_param("The run's id."),
            query_param(
                "from_version",
                "First version to send (default 1).",
                json!({ "type": "integer", "minimum": 1, "maximum": crate::config::VERSION_MAX }),
            ),
        ],
        None,
        with(
            with(
                errors(c, &[("404", "No such run (or not one you may read).")]),
                "101",
                json!({ "description": "WebSocket: frames are `{kind: event, event}` or `{kind: error, error}`; the client may send `{action: cancel, reason}`." }),
            ),
            "200",
            json!({ "description": "Server-Sent Events: one event per run event (id = version, event = type, data = the event's view).", "content": { "text/event-stream": { "schema": {
                "type": "object",
                "description": "One server-sent event.",
                "properties": { "id": { "type": "string" }, "event": { "type": "string" }, "data": { "type": "string" }, "retry": { "type": "integer" } }
            } } } }),
        ),
    );
    json!({ "register": register, "definition": definition, "start": start, "list": list, "get": get, "events": events, "cancel": cancel, "signal": signal, "stream": stream })
}

/// The document as pretty JSON with a trailing newline (the committed file's form).
pub fn document_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = serde_json::to_string_pretty(&document()).unwrap_or_else(|_| "{}".to_string());
        text.push('\n');
        text
    })
}
