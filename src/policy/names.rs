//! Name resolution of a rule script before it runs: every function it calls and every property
//! of the case it reads must be one the sandbox provides, or the package is refused with
//! `file:line:col` and a "是否想写". Without it a misspelt helper (`c.has_issud(...)`) compiles
//! and fails only when a case happens to reach it.
//!
//! Rhai resolves names at run time, so this is a check over the script's tokens: calls `name(`,
//! methods `.name(`, and property chains rooted at the case `c` (`c.student.status`). Values the
//! script builds itself (`d.kind` over a deadline) are not typed here and are not checked.
//!
//! The same scan finds where a rule makes its effects (`deny(`, `approve(`, ...): the places the
//! rule-coverage gate asks each to be reached by some case.

use std::collections::BTreeSet;

use super::error::{PolicyLoadError, ScriptPosition};
use super::evaluate::{SCHOOL_FIELDS, STUDENT_FIELDS, TRANSITION_FIELDS};
use super::sandbox::{CASE_METHODS, CASE_PROPERTIES, EFFECTS, HELPERS, LANGUAGE_FUNCTIONS};

/// One token of a script: a name or one punctuation character, with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Name(String, usize, usize),
    Punct(char, usize, usize),
}

/// Words of the language that may stand before `(` without being a call.
const KEYWORDS: &[&str] = &[
    "if", "else", "while", "loop", "for", "in", "return", "let", "const", "fn", "switch", "do",
    "until", "break", "continue", "throw", "try", "catch", "true", "false", "private", "this",
    "global", "import", "export", "as",
];

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    line: usize,
    col: usize,
    out: &'a mut Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self, n: usize) -> Option<char> {
        self.chars.get(self.at + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.at).copied()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Code until end of input, or until the `}` closing an interpolation when `nested`.
    fn code(&mut self, nested: bool) {
        let mut depth = 0usize;
        while let Some(c) = self.peek(0) {
            let (line, col) = (self.line, self.col);
            match c {
                '/' if self.peek(1) == Some('/') => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                '/' if self.peek(1) == Some('*') => {
                    self.bump();
                    self.bump();
                    while self.peek(0).is_some()
                        && !(self.peek(0) == Some('*') && self.peek(1) == Some('/'))
                    {
                        self.bump();
                    }
                    self.bump();
                    self.bump();
                }
                '"' | '\'' => {
                    self.bump();
                    while let Some(ch) = self.bump() {
                        if ch == '\\' {
                            self.bump();
                        } else if ch == c {
                            break;
                        }
                    }
                }
                '`' => {
                    self.bump();
                    while let Some(ch) = self.bump() {
                        if ch == '`' {
                            break;
                        }
                        if ch == '$' && self.peek(0) == Some('{') {
                            self.bump();
                            self.code(true);
                        }
                    }
                }
                c if c.is_alphabetic() || c == '_' => {
                    let mut name = String::new();
                    while let Some(ch) =
                        self.peek(0).filter(|ch| ch.is_alphanumeric() || *ch == '_')
                    {
                        name.push(ch);
                        self.bump();
                    }
                    self.out.push(Token::Name(name, line, col));
                }
                c if c.is_ascii_digit() => {
                    while self
                        .peek(0)
                        .is_some_and(|ch| ch.is_alphanumeric() || ch == '_')
                    {
                        self.bump();
                    }
                }
                c if c.is_whitespace() => {
                    self.bump();
                }
                _ => {
                    self.bump();
                    match c {
                        '{' => depth += 1,
                        '}' if nested && depth == 0 => return,
                        '}' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    self.out.push(Token::Punct(c, line, col));
                }
            }
        }
    }
}

/// The tokens of a script, comments and string contents left out (interpolated code kept).
pub(crate) fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    Lexer {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
        col: 1,
        out: &mut out,
    }
    .code(false);
    out
}

/// ",是否想写 `x`?" when a provided name is close to what was written.
fn hint<'a>(written: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (strsim::levenshtein(written, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(",是否想写 `{k}`?"))
        .unwrap_or_default()
}

fn is_punct(t: Option<&Token>, want: char) -> bool {
    matches!(t, Some(Token::Punct(c, _, _)) if *c == want)
}

fn name_of(t: Option<&Token>) -> Option<(&str, usize, usize)> {
    match t {
        Some(Token::Name(n, l, c)) => Some((n.as_str(), *l, *c)),
        _ => None,
    }
}

/// Every name a script uses that the sandbox does not provide, with its position.
pub fn unknown_names(file: &str, text: &str) -> Vec<PolicyLoadError> {
    let toks = tokens(text);
    let own_fns: BTreeSet<&str> = toks
        .windows(2)
        .filter_map(|w| match (&w[0], &w[1]) {
            (Token::Name(k, _, _), Token::Name(n, _, _)) if k == "fn" => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let callable = |n: &str| {
        HELPERS.contains(&n)
            || LANGUAGE_FUNCTIONS.contains(&n)
            || CASE_METHODS.contains(&n)
            || own_fns.contains(n)
    };
    let all_callable = || {
        HELPERS
            .iter()
            .chain(LANGUAGE_FUNCTIONS)
            .chain(CASE_METHODS)
            .copied()
            .chain(own_fns.iter().copied())
    };
    let mut errors = Vec::new();
    let at = |l: usize, c: usize| ScriptPosition {
        file: file.into(),
        line: l,
        column: c,
    };
    for (i, tok) in toks.iter().enumerate() {
        let Token::Name(name, line, col) = tok else {
            continue;
        };
        let after_dot = i > 0 && is_punct(toks.get(i - 1), '.');
        let called = is_punct(toks.get(i + 1), '(');
        let declared = i > 0 && matches!(toks.get(i - 1), Some(Token::Name(k, _, _)) if k == "fn");
        if name == "c" && !after_dot {
            check_case_chain(&toks[i..], &at, &mut errors);
            continue;
        }
        if !called || declared || KEYWORDS.contains(&name.as_str()) {
            continue;
        }
        // Methods of the case were checked with their chain.
        let on_case = after_dot
            && i >= 2
            && matches!(toks.get(i - 2), Some(Token::Name(n, _, _)) if n == "c")
            && !(i >= 3 && is_punct(toks.get(i - 3), '.'));
        if on_case {
            continue;
        }
        if !callable(name) {
            errors.push(PolicyLoadError::at(
                "policy_unknown_function",
                at(*line, *col),
                format!(
                    "规则调用了不存在的函数 `{name}`{}",
                    hint(name, all_callable())
                ),
            ));
        }
    }
    errors
}

/// `c.<property>`, `c.<method>(`, `c.student.<field>`, `c.school.<field>`, `c.transition.<field>`.
fn check_case_chain(
    toks: &[Token],
    at: &impl Fn(usize, usize) -> ScriptPosition,
    errors: &mut Vec<PolicyLoadError>,
) {
    if !is_punct(toks.get(1), '.') {
        return;
    }
    let Some((first, l, c)) = name_of(toks.get(2)) else {
        return;
    };
    if is_punct(toks.get(3), '(') {
        if !CASE_METHODS.contains(&first) {
            errors.push(PolicyLoadError::at(
                "policy_unknown_function",
                at(l, c),
                format!(
                    "案例 c 没有方法 `{first}`{}",
                    hint(first, CASE_METHODS.iter().copied())
                ),
            ));
        }
        return;
    }
    if !CASE_PROPERTIES.contains(&first) {
        errors.push(PolicyLoadError::at(
            "policy_unknown_field",
            at(l, c),
            format!(
                "案例 c 没有属性 `{first}`{}",
                hint(first, CASE_PROPERTIES.iter().copied())
            ),
        ));
        return;
    }
    let fields: &[&str] = match first {
        "student" => STUDENT_FIELDS,
        "school" => SCHOOL_FIELDS,
        "transition" => TRANSITION_FIELDS,
        _ => return,
    };
    if !is_punct(toks.get(3), '.') {
        return;
    }
    let Some((field, l, c)) = name_of(toks.get(4)) else {
        return;
    };
    // `c.student.deadlines.len()` reads a field, then calls a method of the language on it.
    if is_punct(toks.get(5), '(') {
        return;
    }
    if !fields.contains(&field) {
        errors.push(PolicyLoadError::at(
            "policy_unknown_field",
            at(l, c),
            format!(
                "c.{first} 没有字段 `{field}`{}",
                hint(field, fields.iter().copied())
            ),
        ));
    }
}

/// Where each rule of a script makes an effect: `(line, column)` of every `deny(`, `allow(`,
/// `require(`, `approve(`, `change(` and `deadline(` call, in the order written.
pub fn effect_sites(text: &str) -> Vec<(usize, usize)> {
    let toks = tokens(text);
    toks.iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            Token::Name(n, l, c)
                if EFFECTS.contains(&n.as_str())
                    && is_punct(toks.get(i + 1), '(')
                    && !(i > 0 && is_punct(toks.get(i - 1), '.')) =>
            {
                Some((*l, *c))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        unknown_names("r.rhai", text)
            .into_iter()
            .map(|e| {
                format!(
                    "{}:{} {} {}",
                    e.position.line, e.position.column, e.code, e.message
                )
            })
            .collect()
    }

    #[test]
    fn a_misspelt_helper_method_or_field_is_named_with_its_position_and_a_suggestion() {
        let text = "rule(#{ id: \"x.a.b\", on: [\"suspend\"], cites: \"d 1\",\n  check: |c| {\n    if c.has_issud(\"hospital_diagnosis\", \"county\") { return alow(\"好\"); }\n    let s = c.studnet.status;\n    if c.transition.reasn == () { return; }\n    deny(`${c.school.areaa}`)\n  }\n});";
        let got = names(text);
        assert_eq!(
            got,
            vec![
                "3:10 policy_unknown_function 案例 c 没有方法 `has_issud`,是否想写 `has_issued`?",
                "3:61 policy_unknown_function 规则调用了不存在的函数 `alow`,是否想写 `allow`?",
                "4:15 policy_unknown_field 案例 c 没有属性 `studnet`,是否想写 `student`?",
                "5:21 policy_unknown_field c.transition 没有字段 `reasn`,是否想写 `reason`?",
                "6:22 policy_unknown_field c.school 没有字段 `areaa`,是否想写 `area`?",
            ]
        );
    }

    #[test]
    fn what_the_sandbox_provides_passes() {
        let text = "fn due(c, kind) { let f = (); for d in c.student.deadlines { if d.kind == kind { f = d.date; } } f }\n// deny( in a comment, c.nothing\nrule(#{ id: \"x.a.b\", on: [\"*\"], cites: \"d 1\", check: |c| {\n  let e = c.param(\"until\");\n  if e == () || !c.has_setting(\"x\") { return; }\n  let t = \"c.fake(\"; let n = c.student.deadlines.len();\n  if c.student.entry_date.sub_string(0, 4) > \"2020\" && due(c, \"x\") != () {\n    return [approve([\"school\"], `至 ${add_years(c.date, 1)}`), deadline(\"k\", e, \"m\")];\n  }\n  if c.sweep || c.school.compulsory || c.transition.documents.len() > n { return allow(\"是\"); }\n  require([\"x\"], \"m\")\n}});";
        assert_eq!(names(text), Vec::<String>::new());
        assert_eq!(
            effect_sites(text),
            vec![(8, 13), (8, 63), (10, 82), (11, 3)]
        );
    }
}
