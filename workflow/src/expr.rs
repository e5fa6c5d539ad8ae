//! The expression language of `when`, `for_each` and `${…}` templates: small and
//! deterministic, no general scripting.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | compare
//! compare := primary (("==" | "!=" | "<" | "<=" | ">" | ">=") primary)?
//! primary := number | 'text' | "text" | true | false | null
//!          | "len" "(" expr ")" | "(" expr ")" | reference
//! reference := name ("." name | "[" integer "]")*
//! ```
//!
//! A reference starts at `input` (the run's input), `steps` (`steps.<name>.output`, and
//! `steps.<name>.status`), `item` or `index` (in a fan-out's step). A path that leads nowhere
//! reads as `null`. `len` counts a list's items, an object's keys or a text's characters.
//! Comparisons: `==` and `!=` on any values; the order comparisons on two numbers or two
//! texts. `and`, `or`, `not` take booleans.

use serde_json::Value;

/// Why an expression does not parse or cannot be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExprError(pub String);

fn error(message: impl Into<String>) -> ExprError {
    ExprError(message.into())
}

/// One step of a reference's path.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    /// `.name`
    Field(String),
    /// `[n]`
    Index(usize),
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal.
    Literal(Value),
    /// A reference: its root and path.
    Ref(String, Vec<Segment>),
    /// `len(e)`.
    Len(Box<Expr>),
    /// `not e`.
    Not(Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// A comparison.
    Compare(Box<Expr>, Op, Box<Expr>),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The roots a reference may start at.
pub const ROOTS: &[&str] = &["input", "steps", "item", "index"];

/// The longest expression, bytes.
pub const EXPR_BYTES_MAX: usize = 4_096;

/// The deepest nesting of parentheses, `not` and `len`.
const DEPTH_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(f64),
    Text(String),
    Name(String),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
}

fn tokens(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => (out.push(Token::LParen), i += 1).1,
            ')' => (out.push(Token::RParen), i += 1).1,
            '[' => (out.push(Token::LBracket), i += 1).1,
            ']' => (out.push(Token::RBracket), i += 1).1,
            '.' => (out.push(Token::Dot), i += 1).1,
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, width) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => {
                        return Err(error(format!(
                            "unexpected {c:?} at {i}: comparisons are ==, !=, <, <=, >, >="
                        )));
                    }
                };
                out.push(Token::Op(op));
                i += width;
            }
            '\'' | '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(error("a text literal is not closed")),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(escaped) => text.push(*escaped),
                                None => return Err(error("a text literal is not closed")),
                            }
                            i += 2;
                        }
                        Some(q) if *q == c => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            text.push(*other);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Text(text));
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == 'E')
                {
                    i += 1;
                }
                let literal: String = chars[start..i].iter().collect();
                let number =
                    literal.parse::<f64>().map_err(|_| error(format!("{literal:?} is not a number")))?;
                out.push(Token::Num(number));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '-') {
                    i += 1;
                }
                out.push(Token::Name(chars[start..i].iter().collect()));
            }
            other => return Err(error(format!("unexpected {other:?} at {i}"))),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Name(n)) if n == word)
    }

    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(error(format!("nested more than {DEPTH_MAX} deep")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.keyword("not") {
            self.at += 1;
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ExprError> {
        let left = self.primary()?;
        if let Some(Token::Op(op)) = self.peek().cloned() {
            self.at += 1;
            let right = self.primary()?;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(right)));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        match self.next() {
            Some(Token::Num(n)) => {
                Ok(Expr::Literal(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)))
            }
            Some(Token::Text(t)) => Ok(Expr::Literal(Value::String(t))),
            Some(Token::LParen) => {
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::RParen) => Ok(inner),
                    _ => Err(error("a '(' is not closed")),
                }
            }
            Some(Token::Name(name)) => match name.as_str() {
                "true" => Ok(Expr::Literal(Value::Bool(true))),
                "false" => Ok(Expr::Literal(Value::Bool(false))),
                "null" => Ok(Expr::Literal(Value::Null)),
                "len" => {
                    if self.next() != Some(Token::LParen) {
                        return Err(error("len takes its argument in parentheses: len(x)"));
                    }
                    self.deeper()?;
                    let inner = self.or()?;
                    self.depth -= 1;
                    if self.next() != Some(Token::RParen) {
                        return Err(error("len( is not closed"));
                    }
                    Ok(Expr::Len(Box::new(inner)))
                }
                "and" | "or" | "not" => Err(error(format!("{name:?} needs an operand before it"))),
                root if ROOTS.contains(&root) => {
                    let mut path = Vec::new();
                    loop {
                        match self.peek() {
                            Some(Token::Dot) => {
                                self.at += 1;
                                match self.next() {
                                    Some(Token::Name(field)) => path.push(Segment::Field(field)),
                                    _ => {
                                        return Err(error(format!(
                                            "a name must follow '.' in a reference to {root}"
                                        )));
                                    }
                                }
                            }
                            Some(Token::LBracket) => {
                                self.at += 1;
                                let index = match self.next() {
                                    Some(Token::Num(n)) if n >= 0.0 && n.fract() == 0.0 && n < 1e9 => {
                                        n as usize
                                    }
                                    _ => return Err(error("an index is a whole number: [0], [1], …")),
                                };
                                if self.next() != Some(Token::RBracket) {
                                    return Err(error("a '[' is not closed"));
                                }
                                path.push(Segment::Index(index));
                            }
                            _ => break,
                        }
                    }
                    Ok(Expr::Ref(root.to_string(), path))
                }
                other => Err(error(format!(
                    "unknown name {other:?}: a reference starts at input, steps, item or index; texts are quoted"
                ))),
            },
            Some(other) => Err(error(format!("unexpected {other:?}"))),
            None => Err(error("the expression ends too early")),
        }
    }
}

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    if text.len() > EXPR_BYTES_MAX {
        return Err(error(format!("longer than {EXPR_BYTES_MAX} bytes")));
    }
    let mut parser = Parser { tokens: tokens(text)?, at: 0, depth: 0 };
    if parser.tokens.is_empty() {
        return Err(error("empty"));
    }
    let expr = parser.or()?;
    if let Some(token) = parser.peek() {
        return Err(error(format!("unexpected {token:?} after a complete expression")));
    }
    Ok(expr)
}

impl Expr {
    /// Every reference in the expression: its root and, for `steps`, the step named.
    pub fn references(&self, out: &mut Vec<(String, Option<String>)>) {
        match self {
            Self::Literal(_) => {}
            Self::Ref(root, path) => {
                let step = match (root.as_str(), path.first()) {
                    ("steps", Some(Segment::Field(step))) => Some(step.clone()),
                    _ => None,
                };
                out.push((root.clone(), step));
            }
            Self::Len(e) | Self::Not(e) => e.references(out),
            Self::And(a, b) | Self::Or(a, b) | Self::Compare(a, _, b) => {
                a.references(out);
                b.references(out);
            }
        }
    }

    /// The value in `scope` (an object with the roots as keys).
    pub fn eval(&self, scope: &Value) -> Result<Value, ExprError> {
        Ok(match self {
            Self::Literal(value) => value.clone(),
            Self::Ref(root, path) => {
                let mut at = scope.get(root).unwrap_or(&Value::Null);
                for segment in path {
                    at = match (segment, at) {
                        (Segment::Field(f), Value::Object(o)) => o.get(f).unwrap_or(&Value::Null),
                        (Segment::Index(i), Value::Array(a)) => a.get(*i).unwrap_or(&Value::Null),
                        _ => &Value::Null,
                    };
                }
                at.clone()
            }
            Self::Len(e) => match e.eval(scope)? {
                Value::Array(a) => Value::from(a.len()),
                Value::Object(o) => Value::from(o.len()),
                Value::String(s) => Value::from(s.chars().count()),
                other => {
                    return Err(error(format!(
                        "len of {} (it takes a list, an object or a text)",
                        kind(&other)
                    )));
                }
            },
            Self::Not(e) => Value::Bool(!boolean(&e.eval(scope)?, "not")?),
            Self::And(a, b) => {
                Value::Bool(boolean(&a.eval(scope)?, "and")? && boolean(&b.eval(scope)?, "and")?)
            }
            Self::Or(a, b) => Value::Bool(boolean(&a.eval(scope)?, "or")? || boolean(&b.eval(scope)?, "or")?),
            Self::Compare(a, op, b) => {
                let (a, b) = (a.eval(scope)?, b.eval(scope)?);
                let ordering = match (&a, &b) {
                    (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
                    (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                    _ => None,
                };
                let equal = match (&a, &b) {
                    (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
                    _ => a == b,
                };
                Value::Bool(match op {
                    Op::Eq => equal,
                    Op::Ne => !equal,
                    _ => {
                        let Some(ordering) = ordering else {
                            return Err(error(format!(
                                "{} and {} cannot be ordered (only two numbers or two texts)",
                                kind(&a),
                                kind(&b)
                            )));
                        };
                        match op {
                            Op::Lt => ordering.is_lt(),
                            Op::Le => ordering.is_le(),
                            Op::Gt => ordering.is_gt(),
                            _ => ordering.is_ge(),
                        }
                    }
                })
            }
        })
    }
}

fn boolean(value: &Value, what: &str) -> Result<bool, ExprError> {
    value.as_bool().ok_or_else(|| error(format!("{what} takes true or false, not {}", kind(value))))
}

/// A value's kind, for errors.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(text: &str, scope: &Value) -> Result<Value, ExprError> {
        parse(text)?.eval(scope)
    }

    #[test]
    fn references_comparisons_and_logic_evaluate() {
        let scope = json!({
            "input": {"topic": "tides", "n": 3},
            "steps": {"plan": {"output": {"items": ["a", "b"]}, "status": "completed"}},
            "item": "b",
            "index": 1,
        });
        assert_eq!(eval("input.topic", &scope).unwrap(), json!("tides"));
        assert_eq!(eval("steps.plan.output.items[1]", &scope).unwrap(), json!("b"));
        assert_eq!(eval("steps.plan.output.items[9]", &scope).unwrap(), Value::Null);
        assert_eq!(eval("input.missing.deeper", &scope).unwrap(), Value::Null);
        assert_eq!(eval("len(steps.plan.output.items) == 2", &scope).unwrap(), json!(true));
        assert_eq!(eval("input.n >= 3 and not (item == 'a')", &scope).unwrap(), json!(true));
        assert_eq!(eval("input.n < 2 or index == 1", &scope).unwrap(), json!(true));
        assert_eq!(eval("\"abc\" < 'abd'", &scope).unwrap(), json!(true));
        assert_eq!(eval("input.n == 3.0", &scope).unwrap(), json!(true));
        assert_eq!(eval("-1 < 0", &scope).unwrap(), json!(true));
        assert_eq!(eval("null == input.nothing", &scope).unwrap(), json!(true));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("input.", "a name must follow"),
            ("(input.n", "not closed"),
            ("len input", "parentheses"),
            ("foo == 1", "unknown name"),
            ("input.n = 1", "comparisons are"),
            ("'open", "not closed"),
            ("input.n 3", "after a complete expression"),
            ("and input", "needs an operand"),
            ("input[x]", "whole number"),
        ] {
            let refused = parse(text).expect_err(text);
            assert!(refused.0.contains(says), "{text:?}: {refused}");
        }
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().0.contains("nested"));
        assert!(parse(&"1 ".repeat(3_000)).unwrap_err().0.contains("longer"));
    }

    #[test]
    fn type_errors_at_evaluation_name_the_kinds() {
        let scope = json!({"input": {"n": 3, "t": "x"}});
        assert!(eval("len(input.n)", &scope).unwrap_err().0.contains("a number"));
        assert!(eval("input.n and true", &scope).unwrap_err().0.contains("true or false"));
        assert!(eval("input.n < input.t", &scope).unwrap_err().0.contains("cannot be ordered"));
    }

    #[test]
    fn references_are_listed_with_their_steps() {
        let mut refs = Vec::new();
        parse("steps.plan.output and input.x or len(steps.review.output) > index")
            .unwrap()
            .references(&mut refs);
        assert!(refs.contains(&("steps".into(), Some("plan".into()))));
        assert!(refs.contains(&("steps".into(), Some("review".into()))));
        assert!(refs.contains(&("index".into(), None)));
    }
}
