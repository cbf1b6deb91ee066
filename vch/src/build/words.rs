//! Word processing of Dockerfile arguments, as dockerd's shell lexer does it: quotes
//! removed (single quotes literal, double quotes expanding), the escape character
//! (`\` or the `# escape=` directive's) taking the next character literally, and
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}` (and their forms without
//! the colon) replaced from the build's variables. RUN, CMD and ENTRYPOINT are not
//! processed here: their shell does it.

/// Where variables come from: the stage's ENV over its ARGs.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// One word: quotes removed, variables expanded, whitespace kept.
pub fn word(s: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let mut words = Lexer::new(s, vars, escape, false).run()?;
    Ok(words.pop().unwrap_or_default())
}

/// Words split at unquoted whitespace, each processed as by [`word`].
pub fn words(s: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, String> {
    Lexer::new(s, vars, escape, true).run()
}

/// `ENV`/`LABEL` arguments: `k=v k2="v 2"` pairs, or the legacy `key value with spaces`
/// form when the first word has no `=`. All values are expanded with the variables as
/// they were before the instruction, as dockerd does.
pub fn key_values(s: &str, vars: &dyn Vars, escape: char) -> Result<Vec<(String, String)>, String> {
    let s = s.trim();
    let first = s.split(char::is_whitespace).next().unwrap_or_default();
    if !first.contains('=') {
        let (key, rest) = s
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{s:?} needs a value (KEY=VALUE or KEY VALUE)"))?;
        return Ok(vec![(
            word(key, vars, escape)?,
            word(rest.trim(), vars, escape)?,
        )]);
    }
    words(s, vars, escape)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not of the form KEY=VALUE")),
        })
        .collect()
}

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    vars: &'a dyn Vars,
    escape: char,
    split: bool,
}

impl<'a> Lexer<'a> {
    fn new(s: &str, vars: &'a dyn Vars, escape: char, split: bool) -> Self {
        Lexer {
            chars: s.chars().collect(),
            at: 0,
            vars,
            escape,
            split,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += 1;
        c
    }

    fn run(mut self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        // A word that is only quotes ("") still counts.
        let mut started = false;
        while let Some(c) = self.next() {
            match c {
                c if self.split && c.is_whitespace() => {
                    if started {
                        out.push(std::mem::take(&mut cur));
                        started = false;
                    }
                }
                '\'' => {
                    started = true;
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(c) => cur.push(c),
                            None => return Err("unexpected end of text: missing '".into()),
                        }
                    }
                }
                '"' => {
                    started = true;
                    loop {
                        match self.next() {
                            Some('"') => break,
                            Some('$') => cur.push_str(&self.variable()?),
                            Some(c) if c == self.escape => match self.next() {
                                Some(n @ ('"' | '$')) => cur.push(n),
                                Some(n) if n == self.escape => cur.push(n),
                                Some(n) => {
                                    cur.push(c);
                                    cur.push(n);
                                }
                                None => return Err("unexpected end of text: missing \"".into()),
                            },
                            Some(c) => cur.push(c),
                            None => return Err("unexpected end of text: missing \"".into()),
                        }
                    }
                }
                '$' => {
                    started = true;
                    cur.push_str(&self.variable()?);
                }
                c if c == self.escape => {
                    started = true;
                    if let Some(n) = self.next() {
                        cur.push(n);
                    }
                }
                c => {
                    started = true;
                    cur.push(c);
                }
            }
        }
        if started || !self.split {
            out.push(cur);
        }
        Ok(out)
    }

    /// After a `$`: the variable's value (or the `$` itself when no name follows).
    fn variable(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.at += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.vars.get(&name).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.at += 1;
        }
        name
    }

    /// `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`.
    fn braced(&mut self) -> Result<String, String> {
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: a variable name must follow ${".into());
        }
        let value = self.vars.get(&name);
        let colon = self.peek() == Some(':');
        if colon {
            self.at += 1;
        }
        let op = self.next();
        if op == Some('}') && !colon {
            return Ok(value.unwrap_or_default());
        }
        let op = op.ok_or_else(|| format!("missing }} after ${{{name}"))?;
        if !matches!(op, '-' | '+') {
            return Err(format!(
                "unsupported modifier ({op}) in substitution of {name}"
            ));
        }
        let word = self.until_brace()?;
        let set = match (&value, colon) {
            (Some(v), true) => !v.is_empty(),
            (Some(_), false) => true,
            (None, _) => false,
        };
        Ok(match (op, set) {
            ('-', true) => value.unwrap_or_default(),
            ('-', false) => word,
            ('+', true) => word,
            _ => String::new(),
        })
    }

    /// The word of a modifier up to its closing brace, itself expanded.
    fn until_brace(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.variable()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
                None => return Err("missing } in substitution".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("one".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("a b".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_unquotes() {
        let w = |s| word(s, &vars, '\\').unwrap();
        assert_eq!(w("$A/${A}x"), "one/onex");
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A b\""), "one b");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("${NOPE:-dflt}|${EMPTY:-e}|${EMPTY-e}"), "dflt|e|");
        assert_eq!(w("${A:+alt}|${NOPE:+alt}|${EMPTY+set}"), "alt||set");
        assert_eq!(w("${NOPE:-$A}"), "one");
        assert_eq!(w("cost $5"), "cost $5");
        assert_eq!(word("`$A", &vars, '`').unwrap(), "$A");
        assert!(word("${A", &vars, '\\').is_err());
        assert!(word("\"open", &vars, '\\').is_err());
        assert!(word("${A:?x}", &vars, '\\')
            .unwrap_err()
            .contains("modifier"));
    }

    #[test]
    fn splits_outside_quotes_only() {
        let ws = |s| words(s, &vars, '\\').unwrap();
        assert_eq!(ws("a  'b c' \"$SP\"  d\\ e"), ["a", "b c", "a b", "d e"]);
        assert_eq!(ws("\"\" x"), ["", "x"]);
        // A variable's spaces do not split: quoting is the lexer's, not the value's.
        assert_eq!(ws("$SP"), ["a b"]);
    }

    #[test]
    fn key_values_in_both_forms() {
        let kv = |s| key_values(s, &vars, '\\').unwrap();
        assert_eq!(
            kv("X=1 Y=\"two words\" Z=$A"),
            [
                ("X".into(), "1".into()),
                ("Y".into(), "two words".into()),
                ("Z".into(), "one".into())
            ]
        );
        assert_eq!(
            kv("LEGACY hello   world"),
            [("LEGACY".into(), "hello   world".into())]
        );
        assert_eq!(kv("\"com.x\"=\"v 1\""), [("com.x".into(), "v 1".into())]);
        assert!(key_values("ALONE", &vars, '\\').is_err());
        assert!(key_values("A=1 =2", &vars, '\\').is_err());
    }
}
