//! YAML parsing errors turned into `file:line:column: message` lines operators can act on.

/// `file:line:column` of a parse error, or just `file` when the parser gave no location.
pub fn located(file: &str, error: &serde_saphyr::Error) -> String {
    match error.location() {
        Some(loc) => format!("{file}:{}:{}", loc.line(), loc.column()),
        None => file.to_owned(),
    }
}

/// The parser's message for users, on one line and without the source snippet.
pub fn message(error: &serde_saphyr::Error) -> String {
    let text = error
        .without_snippet()
        .render_with_formatter(&serde_saphyr::UserMessageFormatter);
    // The location is printed in front already; keep the first line, which holds the cause.
    let first = text.lines().next().unwrap_or_default();
    first
        .split(" at line ")
        .next()
        .unwrap_or(first)
        .trim()
        .to_owned()
}

/// A line and column in a YAML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl Pos {
    /// The position a `Spanned` value was written at.
    pub fn of<T>(spanned: &serde_saphyr::Spanned<T>) -> Pos {
        Pos {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
        }
    }
}
