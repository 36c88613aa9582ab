//! Splitting input text into SQL statements at `;` (outside quotes and comments).

/// A complete statement and the comment lines that came before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Comment lines between the previous statement and this one (for `--echo`).
    pub lead: String,
    /// The statement, without its `;`.
    pub sql: String,
}

/// Accumulates lines and yields complete statements.
#[derive(Default)]
pub struct Splitter {
    buf: String,
    /// Comment lines seen since the last statement, the next statement's lead.
    lead: String,
}

impl Splitter {
    /// Adds a line; returns the statements it completed. The first one gets the comments
    /// seen before it; comments after the last `;` of the line go to the next statement.
    pub fn push_line(&mut self, line: &str) -> Vec<Statement> {
        self.buf.push_str(line);
        self.buf.push('\n');
        let mut out = Vec::new();
        while let Some(end) = statement_end(&self.buf) {
            let sql = self.buf[..end].trim().to_string();
            self.buf = self.buf[end + 1..].to_string();
            if !is_blank(&sql) {
                out.push(Statement {
                    lead: self.take_lead(),
                    sql,
                });
            }
        }
        if is_blank(&self.buf) {
            // Comments between statements are not part of any statement; they are kept as the
            // next statement's lead.
            if !self.buf.trim().is_empty() {
                self.lead.push_str(self.buf.trim_start());
            }
            self.buf.clear();
        }
        out
    }

    /// The comment lines seen since the last statement (emptied): the lead of a meta command.
    pub fn take_lead(&mut self) -> String {
        std::mem::take(&mut self.lead)
    }

    /// Whether a statement (or a block comment) is unfinished.
    pub fn pending(&self) -> bool {
        !is_blank(&self.buf)
    }

    /// The unfinished rest (a last statement without `;`), emptied.
    pub fn finish(&mut self) -> Option<Statement> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!is_blank(rest)).then(|| Statement {
            lead: self.take_lead(),
            sql: rest.to_string(),
        })
    }
}

/// Only whitespace and comments.
fn is_blank(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            // An unclosed block comment continues on the next line: not blank yet.
            match after.split_once("*/") {
                Some((_, r)) => rest = r.trim_start(),
                None => return false,
            }
        } else {
            return rest.is_empty();
        }
    }
}

/// Byte offset of the first `;` that ends a statement.
fn statement_end(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{Splitter, Statement};

    fn sql(statements: Vec<Statement>) -> Vec<String> {
        statements.into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let mut s = Splitter::default();
        assert!(s.push_line("SELECT 'a;b', \"c;d\" -- e;f").is_empty());
        assert!(s.pending());
        assert_eq!(
            sql(s.push_line("/* g; */ FROM t; SELECT 2;")),
            vec![
                "SELECT 'a;b', \"c;d\" -- e;f\n/* g; */ FROM t".to_string(),
                "SELECT 2".to_string()
            ]
        );
        assert!(!s.pending());
        assert!(s.push_line("-- only a comment").is_empty());
        assert!(!s.pending());
        assert_eq!(s.take_lead(), "-- only a comment\n");
        assert_eq!(s.take_lead(), "");
        assert!(s.push_line("SELECT 3").is_empty());
        assert_eq!(s.finish().map(|s| s.sql).as_deref(), Some("SELECT 3"));
    }

    #[test]
    fn comments_lead_the_statement_after_them() {
        let mut s = Splitter::default();
        assert!(s.push_line("-- a").is_empty());
        let done = s.push_line("SELECT 1; SELECT 2; -- b");
        assert_eq!(done.len(), 2);
        assert_eq!((done[0].lead.as_str(), done[0].sql.as_str()), ("-- a\n", "SELECT 1"));
        assert_eq!((done[1].lead.as_str(), done[1].sql.as_str()), ("", "SELECT 2"));
        let done = s.push_line("SELECT 3;");
        assert_eq!(done[0].lead, "-- b\n");
    }

    #[test]
    fn a_block_comment_may_span_lines_between_statements() {
        let mut s = Splitter::default();
        assert!(s.push_line("/* a").is_empty());
        assert!(s.pending(), "an open block comment continues");
        let done = s.push_line("b */ SELECT 1;");
        assert_eq!(sql(done), vec!["/* a\nb */ SELECT 1".to_string()]);
        assert!(!s.pending());
    }
}
