//! The label-selector grammar: a lexer and a recursive-descent parser for `?labelSelector=`.

use std::fmt;

use super::{Operator, Requirement};

/// A token of the label-selector grammar with the byte offset it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Word(String),
    /// `!`
    Not,
    /// `=` or `==`
    Eq,
    /// `!=`
    NotEq,
    Comma,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Not => f.write_str("\"!\""),
            Token::Eq => f.write_str("\"=\""),
            Token::NotEq => f.write_str("\"!=\""),
            Token::Comma => f.write_str("\",\""),
            Token::Open => f.write_str("\"(\""),
            Token::Close => f.write_str("\")\""),
        }
    }
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')' | '<' | '>')
}

pub(super) fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '=' => {
                chars.next_if(|&(_, c)| c == '=');
                Token::Eq
            }
            '!' => {
                if chars.next_if(|&(_, c)| c == '=').is_some() {
                    Token::NotEq
                } else {
                    Token::Not
                }
            }
            '<' | '>' => {
                return Err(format!(
                    "operator {c:?} at byte {at} is not supported \
                     (use =, ==, !=, in, notin, ! or a bare key)"
                ))
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if is_special(c) {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                Token::Word(text[at..end].to_string())
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

pub(super) struct Parser {
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn found(t: Option<&Token>) -> String {
        match t {
            Some(t) => t.to_string(),
            None => "the end".to_string(),
        }
    }

    pub(super) fn selector(mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        if self.peek().is_none() {
            return Ok(out);
        }
        loop {
            out.push(self.requirement()?);
            match self.next() {
                None => return Ok(out),
                Some(Token::Comma) => {
                    if self.peek().is_none() {
                        return Err("expected a requirement after the last \",\"".into());
                    }
                }
                t => {
                    return Err(format!(
                        "expected \",\" or the end after {:?}, found {}",
                        out.last().map(ToString::to_string).unwrap_or_default(),
                        Parser::found(t.as_ref())
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let key = match self.next() {
            Some(Token::Not) => {
                let key = self.word("a label key after \"!\"")?;
                return Requirement::new(&key, Operator::DoesNotExist, None::<String>);
            }
            Some(Token::Word(w)) => w,
            t => {
                return Err(format!(
                    "expected a label key or \"!\", found {}",
                    Parser::found(t.as_ref())
                ))
            }
        };
        match self.peek() {
            None | Some(Token::Comma) => Requirement::new(&key, Operator::Exists, None::<String>),
            Some(Token::Eq) | Some(Token::NotEq) => {
                let operator = if self.next() == Some(Token::Eq) {
                    Operator::Equals
                } else {
                    Operator::NotEquals
                };
                // An empty value (`app=`) means "the label is set to the
                // empty string", as in Kubernetes.
                let value = match self.peek() {
                    None | Some(Token::Comma) => String::new(),
                    Some(Token::Word(_)) => self.word("a value")?,
                    Some(t) => {
                        return Err(format!("expected a value after {key:?}, found {t}"));
                    }
                };
                Requirement::new(&key, operator, [value])
            }
            Some(Token::Word(w)) if w == "in" || w == "notin" => {
                let operator = if w == "in" {
                    Operator::In
                } else {
                    Operator::NotIn
                };
                self.pos += 1;
                let values = self.value_list(&key)?;
                Requirement::new(&key, operator, values)
            }
            Some(t) => Err(format!(
                "expected an operator (=, ==, !=, in, notin), \",\" or the end after {key:?}, \
                 found {t}"
            )),
        }
    }

    /// `( value [, value]* )`; a value may be empty, as in `(a,)`.
    fn value_list(&mut self, key: &str) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Open) => {}
            t => {
                return Err(format!(
                    "expected \"(\" after the operator on {key:?}, found {}",
                    Parser::found(t.as_ref())
                ))
            }
        }
        if self.peek() == Some(&Token::Close) {
            return Err(format!("the value list for {key:?} is empty"));
        }
        let mut values = Vec::new();
        let mut current = String::new();
        loop {
            match self.next() {
                Some(Token::Word(w)) if current.is_empty() => current = w,
                Some(Token::Comma) => values.push(std::mem::take(&mut current)),
                Some(Token::Close) => {
                    values.push(current);
                    return Ok(values);
                }
                t => {
                    return Err(format!(
                        "expected a value, \",\" or \")\" in the list for {key:?}, found {}",
                        Parser::found(t.as_ref())
                    ))
                }
            }
        }
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            t => Err(format!(
                "expected {what}, found {}",
                Parser::found(t.as_ref())
            )),
        }
    }
}
