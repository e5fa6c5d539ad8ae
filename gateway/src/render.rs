//! Results as JSON (default), Markdown or HTML, chosen by `?format=` or else by `Accept`; and
//! the check that a request's `Accept` admits something the endpoint answers in (`406`
//! otherwise, instead of JSON the client said it cannot take).

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::task::TaskView;

/// A response format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/json`.
    Json,
    /// `text/markdown`.
    Markdown,
    /// `text/html`.
    Html,
}

impl Format {
    /// `?format=` wins; otherwise the first of the `Accept` types that names one; JSON by default.
    pub fn negotiate(query: Option<Format>, headers: &HeaderMap) -> Self {
        if let Some(format) = query {
            return format;
        }
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        for item in accept.split(',') {
            let essence = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match essence.as_str() {
                "application/json" => return Self::Json,
                "text/markdown" => return Self::Markdown,
                "text/html" => return Self::Html,
                _ => {}
            }
        }
        Self::Json
    }
}

/// The media types an endpoint answers in (its errors are JSON too).
fn produces(path: &str) -> &'static [&'static str] {
    const JSON: &[&str] = &["application/json"];
    const TASK: &[&str] = &["application/json", "text/markdown", "text/html"];
    match path {
        "/metrics" => &["text/plain", "application/json"],
        "/tasks/execute" => TASK,
        _ if (path.starts_with("/tasks/") || path.starts_with("/runs/")) && path.ends_with("/stream") => {
            &["text/event-stream", "application/json"]
        }
        _ if path.starts_with("/tasks/") && path.matches('/').count() == 2 && path != "/tasks/submit" => TASK,
        _ => JSON,
    }
}

/// Whether an `Accept` header admits `media` (`*/*`, `type/*` or the type itself, with a
/// quality above 0). No header, or an empty one, admits everything.
fn admits(accept: &str, media: &str) -> bool {
    if accept.trim().is_empty() {
        return true;
    }
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        !refused
            && (range == "*/*"
                || range == media
                || range.strip_suffix("/*").is_some_and(|prefix| prefix == kind))
    })
}

/// Middleware: refuses with `406` a request whose `Accept` admits none of the types its
/// endpoint answers in.
pub(crate) async fn require_acceptable(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let accept = request.headers().get(header::ACCEPT).map(|v| v.to_str().unwrap_or("\u{0}"));
    if let Some(accept) = accept {
        let produces = produces(request.uri().path());
        if !produces.iter().any(|media| admits(accept, media)) {
            return Error::NotAcceptable { produces: produces.join(", ") }.into_response();
        }
    }
    next.run(request).await
}

/// Renders a task in `format` with `status`.
pub fn task(view: &TaskView, format: Format, status: axum::http::StatusCode) -> Result<Response> {
    let (content_type, body) = match format {
        Format::Json => {
            return Ok((status, axum::Json(view)).into_response());
        }
        Format::Markdown => ("text/markdown; charset=utf-8", markdown(view)?),
        Format::Html => ("text/html; charset=utf-8", html(view)?),
    };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

fn output_text(view: &TaskView) -> Result<Option<String>> {
    view.output
        .as_ref()
        .map(|output| match output {
            serde_json::Value::String(text) => Ok(text.clone()),
            other => serde_json::to_string_pretty(other).map_err(|e| Error::Internal(e.to_string())),
        })
        .transpose()
}

fn markdown(view: &TaskView) -> Result<String> {
    let mut out = format!(
        "# Task {}\n\n- **status:** {}\n- **capability:** {}\n- **submitter:** {}\n",
        view.task_id, view.status, view.capability, view.submitter
    );
    if let Some(agent) = &view.agent_id {
        out.push_str(&format!("- **agent:** {agent} (attempt {})\n", view.attempt));
    }
    if let Some(duration) = view.duration_ms {
        out.push_str(&format!("- **duration:** {duration} ms\n"));
    }
    out.push_str(&format!("\n## Description\n\n{}\n", view.description));
    if let Some(output) = output_text(view)? {
        out.push_str(&format!("\n## Result\n\n```\n{}\n```\n", output.replace("```", "``\u{200b}`")));
    }
    if let Some(reason) = &view.end_reason {
        out.push_str(&format!("\n## Why it ended\n\n{reason}\n"));
    }
    Ok(out)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(view: &TaskView) -> Result<String> {
    let e = escape_html;
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Task {id}</title></head><body>\n\
         <h1>Task {id}</h1>\n<dl><dt>status</dt><dd>{status}</dd><dt>capability</dt><dd>{capability}</dd>\
         <dt>submitter</dt><dd>{submitter}</dd></dl>\n<h2>Description</h2>\n<p>{description}</p>\n",
        id = e(&view.task_id),
        status = e(&view.status),
        capability = e(&view.capability),
        submitter = e(&view.submitter),
        description = e(&view.description),
    );
    if let Some(output) = output_text(view)? {
        out.push_str(&format!("<h2>Result</h2>\n<pre>{}</pre>\n", e(&output)));
    }
    if let Some(reason) = &view.end_reason {
        out.push_str(&format!("<h2>Why it ended</h2>\n<p>{}</p>\n", e(reason)));
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_query_choose_the_format() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::negotiate(None, &headers), Format::Json);
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml"));
        assert_eq!(Format::negotiate(None, &headers), Format::Html);
        assert_eq!(Format::negotiate(Some(Format::Markdown), &headers), Format::Markdown);
    }

    #[test]
    fn accept_admits_by_type_wildcard_and_quality() {
        assert!(admits("", "application/json"));
        assert!(admits("*/*", "application/json"));
        assert!(admits("application/*", "application/json"));
        assert!(admits("text/html, application/json;q=0.5", "application/json"));
        assert!(!admits("application/xml", "application/json"));
        assert!(!admits("application/json;q=0", "application/json"));
        assert!(!admits("text/*", "application/json"));
        assert_eq!(produces("/tasks/abc"), ["application/json", "text/markdown", "text/html"]);
        assert_eq!(produces("/tasks/abc/events"), ["application/json"]);
        assert_eq!(produces("/tasks/submit"), ["application/json"]);
        assert_eq!(produces("/tasks/abc/stream"), ["text/event-stream", "application/json"]);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape_html("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }
}
