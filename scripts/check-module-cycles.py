#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle.

A cycle (`a` uses `b`, `b` uses `a`, or longer) means neither module can be read, tested or
moved without the other: their shared part belongs in a lower module. This checker keeps
the module graph of every crate one-way.

For each crate target (src/lib.rs, src/main.rs, src/bin/*.rs) it takes the `mod x;`
declarations of the root file as the top-level modules, maps every file under src/x.rs and
src/x/ to module `x`, and records an edge x -> y for every path that reaches y from the
crate root: `crate::y...`, `crate::{y, ...}`, `super::y` when `super` lands on the root, and
names the root re-exports (`pub use y::Thing;` makes `crate::Thing` an edge to y). Comments
and string literals are ignored; test modules count like any other code.

Usage: scripts/check-module-cycles.py [crate dir ...]   (default: every workspace member)
Exit status 1 and one line per cycle when a cycle exists.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOKEN = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_]*|::|[{}();,*]|\S")


def strip_comments_and_strings(src):
    """Blank out comments, string and char literals, keeping newlines for line numbers."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * src.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 20]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(' ""' + "\n" * src.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(' ""' + "\n" * src.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): only the former is skipped.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", src[i:])
            if m:
                out.append(" ")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokens(text):
    """(token, line) pairs of comment- and string-free source."""
    line = 1
    pos = 0
    for m in TOKEN.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        yield m.group(0), line


def group_heads(toks, i):
    """First path segments of the items of a `{...}` use group starting at toks[i] == '{'."""
    heads, depth, expect = [], 0, True
    while i < len(toks):
        t = toks[i][0]
        if t == "{":
            depth += 1
            if depth == 1:
                expect = True
        elif t == "}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and t == ",":
            expect = True
        elif depth == 1 and expect and re.match(r"[A-Za-z_]", t):
            heads.append(t)
            expect = False
        elif depth == 1 and expect and t == "*":
            expect = False
        i += 1
    return heads


def referenced_root_names(path, module_path):
    """Yield (name, line) for each item reached through the crate root from this file.

    module_path is the file's module path below the root (['server'] for src/server.rs);
    inline `mod x { ... }` blocks extend it while inside them."""
    with open(path, encoding="utf-8") as f:
        toks = list(tokens(strip_comments_and_strings(f.read())))
    stack = []  # (brace depth at which an inline mod opened, name)
    depth = 0
    i = 0
    while i < len(toks):
        t, line = toks[i]
        if t == "mod" and i + 2 < len(toks) and toks[i + 2][0] == "{":
            stack.append((depth + 1, toks[i + 1][0]))
        if t == "{":
            depth += 1
        elif t == "}":
            if stack and stack[-1][0] == depth:
                stack.pop()
            depth -= 1
        here = module_path + [name for _, name in stack]
        if t in ("crate", "super") and i + 1 < len(toks) and toks[i + 1][0] == "::":
            prev = toks[i - 1][0] if i else ""
            if prev == "::":  # part of a longer path (`super::super::x` handled from its start)
                i += 1
                continue
            if t == "crate":
                level = 0
                j = i + 2
            else:
                level = len(here)
                j = i
                while j + 1 < len(toks) and toks[j][0] == "super" and toks[j + 1][0] == "::":
                    level -= 1
                    j += 2
            if level == 0 and j < len(toks):
                if toks[j][0] == "{":
                    for name in group_heads(toks, j):
                        yield name, line
                elif re.match(r"[A-Za-z_]", toks[j][0]):
                    yield toks[j][0], line
        i += 1


def parse_root(root_file):
    """Top-level `mod` names and the root's re-exports {name: module}."""
    with open(root_file, encoding="utf-8") as f:
        toks = [t for t, _ in tokens(strip_comments_and_strings(f.read()))]
    mods, reexports = [], {}
    depth = 0
    for i, t in enumerate(toks):
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
        elif depth == 0 and t == "mod" and i + 2 < len(toks) and toks[i + 2] == ";":
            mods.append(toks[i + 1])
    mod_set = set(mods)
    # `pub use m::X;`, `pub use m::{X, Y as Z};`, `pub use m::sub::X;`
    i = 0
    while i < len(toks):
        if toks[i] == "use" and depth_at(toks, i) == 0 and i + 2 < len(toks) and toks[i + 1] in mod_set and toks[i + 2] == "::":
            module = toks[i + 1]
            j = i + 3
            end = j
            while end < len(toks) and toks[end] != ";":
                end += 1
            names = leaf_names(toks[j:end])
            for name in names:
                reexports[name] = module
            i = end
        i += 1
    return mods, reexports


def depth_at(toks, idx):
    return toks[:idx].count("{") - toks[:idx].count("}")


def leaf_names(seq):
    """Names a use tree brings into scope: the last segment of each path, or its `as` alias."""
    names = []
    cur = None
    k = 0
    while k < len(seq):
        t = seq[k]
        if t == "as" and k + 1 < len(seq):
            cur = seq[k + 1]
            k += 2
            continue
        if t in (",", "}", "{"):
            if cur and t != "{":
                names.append(cur)
            cur = None if t != "{" else None
        elif re.match(r"[A-Za-z_]", t):
            cur = t
        k += 1
    if cur:
        names.append(cur)
    return [n for n in names if n != "self"]


def crate_targets(crate_dir):
    src = os.path.join(crate_dir, "src")
    roots = [os.path.join(src, f) for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))]
    bindir = os.path.join(src, "bin")
    if os.path.isdir(bindir):
        roots += [os.path.join(bindir, f) for f in sorted(os.listdir(bindir)) if f.endswith(".rs")]
    return roots


def module_files(src, module):
    """(file, module path) of every file that makes up top-level module `module`."""
    single = os.path.join(src, module + ".rs")
    if os.path.exists(single):
        yield single, [module]
    folder = os.path.join(src, module)
    if os.path.isdir(folder):
        for dirpath, _, files in os.walk(folder):
            for f in sorted(files):
                if not f.endswith(".rs"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
                if rel[-1] == "mod":
                    rel = rel[:-1]
                yield os.path.join(dirpath, f), rel


def graph_of(root_file):
    src = os.path.dirname(root_file)
    mods, reexports = parse_root(root_file)
    edges = {m: {} for m in mods}  # m -> {target: first evidence "file:line"}
    for m in mods:
        for path, module_path in module_files(src, m):
            for name, line in referenced_root_names(path, module_path):
                target = name if name in edges else reexports.get(name)
                if target and target != m and target not in edges[m]:
                    edges[m][target] = f"{os.path.relpath(path, ROOT)}:{line}"
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def one_cycle(edges, comp):
    """A concrete loop through the component, for the message: shortest path back to start."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v]):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                path.reverse()
                return path + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def workspace_members():
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"members\s*=\s*\[(.*?)\]", text, re.S)
    return [os.path.join(ROOT, p) for p in re.findall(r'"([^"]+)"', m.group(1))] if m else []


def main(argv):
    crates = [os.path.abspath(a) for a in argv] or workspace_members()
    found = 0
    for crate in crates:
        for root_file in crate_targets(crate):
            edges = graph_of(root_file)
            for comp in cycles(edges):
                found += 1
                loop = one_cycle(edges, comp)
                hops = ", ".join(f"{a} -> {b} ({edges[a][b]})" for a, b in zip(loop, loop[1:]))
                print(f"{os.path.relpath(root_file, ROOT)}: module cycle among {{{', '.join(comp)}}}: {hops}")
    if found:
        print(f"check-module-cycles: {found} cycle(s); move what both sides need into a lower module")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
