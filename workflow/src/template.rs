//! Templates: a step's description and input, and a run's output. In a string, each `${expr}`
//! is replaced by the expression's value (a text as it is, anything else as JSON); a string
//! that is exactly one `${expr}` takes the value itself, of any type. `$${` writes `${`.

use serde_json::Value;

use crate::expr::{self, Expr, ExprError};

/// A string's parts: literal text and expressions.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

fn parts(text: &str) -> Result<Vec<Part>, ExprError> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            literal.push_str(&rest[..at - 1]);
            literal.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        literal.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').ok_or_else(|| ExprError(format!("a '${{' is not closed in {text:?}")))?;
        if !literal.is_empty() {
            out.push(Part::Text(std::mem::take(&mut literal)));
        }
        out.push(Part::Expr(
            expr::parse(&after[..end]).map_err(|e| ExprError(format!("in ${{{}}}: {e}", &after[..end])))?,
        ));
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Part::Text(literal));
    }
    Ok(out)
}

/// Every expression of a JSON template (in its strings), parsed; the first that does not
/// parse is the error.
pub fn expressions(template: &Value) -> Result<Vec<Expr>, ExprError> {
    let mut out = Vec::new();
    collect(template, &mut out)?;
    Ok(out)
}

fn collect(template: &Value, out: &mut Vec<Expr>) -> Result<(), ExprError> {
    match template {
        Value::String(text) => {
            for part in parts(text)? {
                if let Part::Expr(e) = part {
                    out.push(e);
                }
            }
        }
        Value::Array(items) => items.iter().try_for_each(|v| collect(v, out))?,
        Value::Object(fields) => fields.values().try_for_each(|v| collect(v, out))?,
        _ => {}
    }
    Ok(())
}

/// The template rendered in `scope`.
pub fn render(template: &Value, scope: &Value) -> Result<Value, ExprError> {
    Ok(match template {
        Value::String(text) => render_text(text, scope)?,
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render(v, scope)).collect::<Result<_, _>>()?)
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(v, scope)?)))
                .collect::<Result<_, ExprError>>()?,
        ),
        other => other.clone(),
    })
}

/// A string template rendered in `scope`: the value itself for a lone `${expr}`.
pub fn render_text(text: &str, scope: &Value) -> Result<Value, ExprError> {
    let parts = parts(text)?;
    if let [Part::Expr(e)] = parts.as_slice() {
        return e.eval(scope);
    }
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(&t),
            Part::Expr(e) => match e.eval(scope)? {
                Value::String(s) => out.push_str(&s),
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn templates_render_values_and_text() {
        let scope = json!({"input": {"topic": "tides", "n": 2, "list": [1, 2]}});
        assert_eq!(render_text("${input.list}", &scope).unwrap(), json!([1, 2]));
        assert_eq!(
            render_text("Study ${input.topic} in ${input.n} ways", &scope).unwrap(),
            json!("Study tides in 2 ways")
        );
        assert_eq!(
            render_text("costs $${input.n} and $5", &scope).unwrap(),
            json!("costs ${input.n} and $5")
        );
        assert_eq!(
            render(&json!({"a": ["${input.n}", "x"], "b": 3}), &scope).unwrap(),
            json!({"a": [2, "x"], "b": 3})
        );
        assert!(render_text("${input.topic", &scope).unwrap_err().0.contains("not closed"));
        assert!(expressions(&json!({"a": "${oops}"})).unwrap_err().0.contains("unknown name"));
    }
}
