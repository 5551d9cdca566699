//! Located errors: one type for every problem found in a file an operator wrote (the
//! configuration, a policy, a decision-test file, an OpenAPI document), printed as
//! `file:line:column: yaml.path (route "id"): message` so an editor can jump to it.

use std::fmt;

/// A line and column in a YAML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line; 0 when the problem is about the whole file.
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

    /// Where the YAML parser stopped, when it says.
    pub fn of_parse_error(error: &serde_saphyr::Error) -> Pos {
        error
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or_default()
    }
}

/// One problem in a file, where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Located {
    /// The file, as given.
    pub file: String,
    /// Where the problem is (line 0: the whole file).
    pub pos: Pos,
    /// YAML path of the offending value, e.g. `routes[2].methods[0]`; empty when none.
    pub yaml_path: String,
    /// The route's id, when the problem is inside a policy route.
    pub route: Option<String>,
    /// What is wrong, with a hint.
    pub message: String,
}

impl Located {
    /// A problem at `pos` in `file`.
    pub fn at(file: &str, pos: Pos, message: impl Into<String>) -> Located {
        Located {
            file: file.to_owned(),
            pos,
            yaml_path: String::new(),
            route: None,
            message: message.into(),
        }
    }

    /// A problem with the whole file (it cannot be read, say).
    pub fn whole(file: &str, message: impl Into<String>) -> Located {
        Located::at(file, Pos::default(), message)
    }

    /// The YAML parser's error, at its position.
    pub fn parse(file: &str, error: &serde_saphyr::Error) -> Located {
        Located::at(file, Pos::of_parse_error(error), message(error))
    }

    /// `file:line:column`, or `file` alone for a problem with the whole file.
    pub fn location(&self) -> String {
        if self.pos.line > 0 {
            format!("{}:{}:{}", self.file, self.pos.line, self.pos.column)
        } else {
            self.file.clone()
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.pos.line > 0 {
            write!(f, ":{}:{}", self.pos.line, self.pos.column)?;
        }
        write!(f, ": ")?;
        if !self.yaml_path.is_empty() {
            write!(f, "{}", self.yaml_path)?;
            if let Some(route) = &self.route {
                write!(f, " (route \"{route}\")")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_located_error_prints_file_line_column_path_route_and_message() {
        let mut e = Located::at(
            "p.yaml",
            Pos {
                line: 14,
                column: 9,
            },
            "unknown method",
        );
        e.yaml_path = "routes[2].methods[0]".into();
        e.route = Some("approve".into());
        assert_eq!(
            e.to_string(),
            "p.yaml:14:9: routes[2].methods[0] (route \"approve\"): unknown method"
        );
        assert_eq!(
            Located::whole("c.yaml", "cannot read").to_string(),
            "c.yaml: cannot read"
        );
    }
}
