//! A Dockerfile as the builder runs it: parsed with `parse-dockerfile`, turned into owned
//! stages of steps, each with the text `docker build` shows for it. Arguments stay raw
//! here; they are expanded step by step (build/words.rs), as variables change.

use parse_dockerfile::{Command, Instruction, JsonOrStringArray, Source};

#[derive(Debug)]
pub struct Dockerfile {
    pub escape: char,
    /// `ARG`s before the first `FROM`: usable in `FROM` lines.
    pub global_args: Vec<String>,
    pub stages: Vec<Stage>,
}

#[derive(Debug)]
pub struct Stage {
    /// The `FROM` image as written (may use global ARGs).
    pub from: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub text: String,
    pub steps: Vec<Step>,
}

#[derive(Debug)]
pub struct Step {
    /// The instruction as `Step N/M : ...` shows it.
    pub text: String,
    pub instr: Instr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cmd {
    Exec(Vec<String>),
    Shell(String),
}

pub type Flags = Vec<(String, Option<String>)>;

#[derive(Clone, Debug)]
pub enum Instr {
    Arg(String),
    Env(String),
    Label(String),
    Maintainer(String),
    Run(Cmd, Flags),
    Cmd(Cmd),
    Entrypoint(Cmd),
    Shell(Vec<String>),
    Copy {
        add: bool,
        src: Vec<String>,
        dest: String,
        flags: Flags,
    },
    Expose(Vec<String>),
    Volume(Vec<String>),
    Workdir(String),
    User(String),
    Stopsignal(String),
    Healthcheck(Flags, Option<Cmd>),
    /// The trigger's text, run when a build starts FROM the image.
    Onbuild(String),
}

pub fn parse(text: &str) -> Result<Dockerfile, String> {
    let d = parse_dockerfile::parse(text).map_err(|e| format!("dockerfile parse error {e}"))?;
    let escape = d
        .parser_directives
        .escape
        .as_ref()
        .map(|e| e.value.value)
        .unwrap_or('\\');
    let starts: Vec<usize> = d.instructions.iter().map(|i| keyword_start(i)).collect();
    let text_of = |i: &Instruction<'_>| -> String {
        let start = keyword_start(i);
        let end = starts
            .iter()
            .copied()
            .find(|s| *s > start)
            .unwrap_or(text.len());
        display(&text[start..end], escape)
    };
    let global_args = d
        .global_args()
        .map(|a| a.arguments.value.to_string())
        .collect();
    let mut stages = Vec::new();
    for s in d.stages() {
        let from = s.from;
        let mut platform = None;
        for f in &from.options {
            match &*f.name.value {
                "platform" => platform = f.value.as_ref().map(|v| v.value.to_string()),
                other => return Err(format!("FROM: unknown flag --{other}")),
            }
        }
        let mut steps = Vec::new();
        for i in s.instructions {
            steps.push(Step {
                text: text_of(i),
                instr: convert(i, text, escape)?,
            });
        }
        stages.push(Stage {
            from: from.image.value.to_string(),
            name: from.as_.as_ref().map(|(_, n)| n.value.to_lowercase()),
            platform,
            text: display(
                &text[from.from.span.start
                    ..starts
                        .iter()
                        .copied()
                        .find(|x| *x > from.from.span.start)
                        .unwrap_or(text.len())],
                escape,
            ),
            steps,
        });
    }
    if stages.is_empty() {
        return Err("the Dockerfile has no FROM instruction".into());
    }
    Ok(Dockerfile {
        escape,
        global_args,
        stages,
    })
}

/// One ONBUILD trigger as a step of the build that uses the image.
pub fn trigger(text: &str) -> Result<Step, String> {
    let source = format!("FROM scratch\n{text}\n");
    let d = parse_dockerfile::parse(&source)
        .map_err(|e| format!("invalid ONBUILD trigger {text:?}: {e}"))?;
    let i = d
        .instructions
        .get(1)
        .ok_or_else(|| format!("invalid ONBUILD trigger {text:?}"))?;
    if matches!(
        i,
        Instruction::From(_) | Instruction::Onbuild(_) | Instruction::Maintainer(_)
    ) {
        return Err(format!("{text:?} isn't allowed as an ONBUILD trigger"));
    }
    Ok(Step {
        text: text.to_string(),
        instr: convert(i, "", '\\')?,
    })
}

fn keyword_start(i: &Instruction<'_>) -> usize {
    match i {
        Instruction::Add(x) => x.add.span.start,
        Instruction::Arg(x) => x.arg.span.start,
        Instruction::Cmd(x) => x.cmd.span.start,
        Instruction::Copy(x) => x.copy.span.start,
        Instruction::Entrypoint(x) => x.entrypoint.span.start,
        Instruction::Env(x) => x.env.span.start,
        Instruction::Expose(x) => x.expose.span.start,
        Instruction::From(x) => x.from.span.start,
        Instruction::Healthcheck(x) => x.healthcheck.span.start,
        Instruction::Label(x) => x.label.span.start,
        Instruction::Maintainer(x) => x.maintainer.span.start,
        Instruction::Onbuild(x) => x.onbuild.span.start,
        Instruction::Run(x) => x.run.span.start,
        Instruction::Shell(x) => x.shell.span.start,
        Instruction::Stopsignal(x) => x.stopsignal.span.start,
        Instruction::User(x) => x.user.span.start,
        Instruction::Volume(x) => x.volume.span.start,
        Instruction::Workdir(x) => x.workdir.span.start,
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

/// The source text of one instruction on one line: continuations joined, comment lines
/// inside it dropped, as dockerd prints it in `Step N/M : ...`.
pub fn display(raw: &str, escape: char) -> String {
    join_continuations(raw, escape).trim().to_string()
}

/// Joins `escape`-newline continuations (the shell form of RUN, CMD, ... keeps them in the
/// parser's output); comment lines within are dropped.
pub fn join_continuations(raw: &str, escape: char) -> String {
    let mut out = String::new();
    for line in raw.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        match line.trim_end().strip_suffix(escape) {
            Some(head) => out.push_str(head),
            None => {
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    out.trim_end().to_string()
}

fn command(c: &Command<'_>, escape: char) -> Cmd {
    match c {
        Command::Exec(v) => Cmd::Exec(v.value.iter().map(|s| s.value.to_string()).collect()),
        Command::Shell(s) => Cmd::Shell(join_continuations(s.value, escape)),
        #[allow(unreachable_patterns)]
        _ => Cmd::Shell(String::new()),
    }
}

fn flags(f: &[parse_dockerfile::Flag<'_>]) -> Flags {
    f.iter()
        .map(|f| {
            (
                f.name.value.to_string(),
                f.value.as_ref().map(|v| v.value.to_string()),
            )
        })
        .collect()
}

fn convert(i: &Instruction<'_>, text: &str, escape: char) -> Result<Instr, String> {
    let buildkit = |what: &str| {
        Err(format!(
            "{what} is a BuildKit feature; this VCH runs the classic builder"
        ))
    };
    Ok(match i {
        Instruction::Arg(a) => Instr::Arg(a.arguments.value.to_string()),
        Instruction::Env(e) => Instr::Env(e.arguments.value.to_string()),
        Instruction::Label(l) => Instr::Label(l.arguments.value.to_string()),
        Instruction::Maintainer(m) => Instr::Maintainer(m.name.value.to_string()),
        Instruction::Run(r) => {
            if !r.here_docs.is_empty() {
                return buildkit("a here-document in RUN");
            }
            Instr::Run(command(&r.arguments, escape), flags(&r.options))
        }
        Instruction::Cmd(c) => Instr::Cmd(command(&c.arguments, escape)),
        Instruction::Entrypoint(e) => Instr::Entrypoint(command(&e.arguments, escape)),
        Instruction::Shell(s) => {
            Instr::Shell(s.arguments.iter().map(|a| a.value.to_string()).collect())
        }
        Instruction::Copy(c) => Instr::Copy {
            add: false,
            src: sources(&c.src)?,
            dest: c.dest.value.to_string(),
            flags: flags(&c.options),
        },
        Instruction::Add(c) => Instr::Copy {
            add: true,
            src: sources(&c.src)?,
            dest: c.dest.value.to_string(),
            flags: flags(&c.options),
        },
        Instruction::Expose(e) => {
            Instr::Expose(e.arguments.iter().map(|a| a.value.to_string()).collect())
        }
        Instruction::Volume(v) => Instr::Volume(match &v.arguments {
            JsonOrStringArray::Json(j) => j.value.iter().map(|a| a.value.to_string()).collect(),
            JsonOrStringArray::String(s) => s.iter().map(|a| a.value.to_string()).collect(),
        }),
        Instruction::Workdir(w) => Instr::Workdir(w.arguments.value.to_string()),
        Instruction::User(u) => Instr::User(u.arguments.value.to_string()),
        Instruction::Stopsignal(s) => Instr::Stopsignal(s.arguments.value.to_string()),
        Instruction::Healthcheck(h) => Instr::Healthcheck(
            flags(&h.options),
            match &h.arguments {
                parse_dockerfile::HealthcheckArguments::Cmd { arguments, .. } => {
                    Some(command(arguments, escape))
                }
                _ => None,
            },
        ),
        Instruction::Onbuild(o) => {
            let start = keyword_start(&o.instruction);
            let rest = if text.is_empty() { "" } else { &text[start..] };
            let end = rest.find('\n').unwrap_or(rest.len());
            Instr::Onbuild(display(&rest[..end], escape))
        }
        Instruction::From(_) => return Err("FROM inside a stage".into()),
        #[allow(unreachable_patterns)]
        _ => return Err("unknown instruction".into()),
    })
}

fn sources(src: &[Source<'_>]) -> Result<Vec<String>, String> {
    src.iter()
        .map(|s| match s {
            Source::Path(p) => Ok(p.value.to_string()),
            _ => Err("a here-document as a COPY source is a BuildKit feature; this VCH runs the classic builder".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_steps_and_their_text() {
        let d = parse(
            "ARG V=1\nFROM busybox:${V} AS base\n# note\nRUN echo a && \\\n  # inside\n  echo b\nCOPY --chown=1:1 a b /d/\nONBUILD RUN echo hi\nFROM base\nCMD [\"sh\"]\n",
        )
        .unwrap();
        assert_eq!(d.global_args, ["V=1"]);
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.stages[0].name.as_deref(), Some("base"));
        assert_eq!(d.stages[0].text, "FROM busybox:${V} AS base");
        let s = &d.stages[0].steps;
        assert_eq!(s[0].text, "RUN echo a &&   echo b");
        assert!(matches!(&s[0].instr, Instr::Run(Cmd::Shell(c), _) if c == "echo a &&   echo b"));
        assert!(
            matches!(&s[1].instr, Instr::Copy { src, dest, flags, add: false }
            if src == &["a", "b"] && dest == "/d/" && flags[0].0 == "chown")
        );
        assert!(matches!(&s[2].instr, Instr::Onbuild(t) if t == "RUN echo hi"));
        assert!(matches!(&d.stages[1].steps[0].instr, Instr::Cmd(Cmd::Exec(v)) if v == &["sh"]));
        assert!(matches!(
            trigger("RUN echo hi").unwrap().instr,
            Instr::Run(..)
        ));
        assert!(trigger("FROM x").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        assert!(parse("RUN echo\n").is_err(), "no FROM");
        assert!(parse("FROM x\nRUN <<EOF\necho\nEOF\n")
            .unwrap_err()
            .contains("BuildKit"));
        assert!(parse("FROM x\nBOGUS y\n").is_err());
    }
}
