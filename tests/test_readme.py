"""The README's code runs, and every link and command in it (and in the docs) is true.

The checker, ``problems``, reads a Markdown text and reports each relative link
that names no file (or a heading that is not there), each ``make`` target the
Makefile does not define, each ``python`` script or repo module that does not
exist and each ``--flag`` its source never mentions, and each repo path a command
names that is not there.  It is run on doctored texts too, so it can fail.
"""

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 150

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
_SPAN = re.compile(r"`([^`\n]+)`")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
_PY = re.compile(r"^(?:\w+=\S*\s+)*(?:\S*/)?python3?\s+(.*)$")  # env vars, .venv/bin/python
_REPO_PATH = re.compile(r"^(?:benchmarks|docs|examples|jcnn|tests|tools)/[\w./-]*\.\w+$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def make_targets(root: Path = ROOT) -> set[str]:
    return set(re.findall(r"^([\w.-]+)\s*:(?!=)", (root / "Makefile").read_text(), re.M))


def commands(text: str) -> list[str]:
    """Shell commands: each line of a ```bash block, and inline code that starts with
    ``make`` or runs ``python``; comments dropped."""
    found = []
    for lang, body in _FENCE.findall(text):
        if lang in ("bash", "sh", "console", "shell"):
            found += [ln.split(" #")[0].strip() for ln in body.splitlines()]
    prose = _FENCE.sub("", text)
    for span in _SPAN.findall(prose):
        if span.startswith(("make ", "python", ".venv/bin/python", "bash ")) or _PY.match(span):
            found.append(span.strip())
    return [c for c in found if c]


def _module_source(name: str, root: Path) -> Path | None:
    """The file ``python -m name`` runs, if the module is this repository's."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


def _sources(script: Path, root: Path) -> str:
    """A script's text and that of the sibling modules and package it imports (the
    example scripts share one argument parser)."""
    text = script.read_text()
    for name in re.findall(r"^(?:from|import)\s+\.?(\w+)", text, re.M):
        for sibling in (script.parent / f"{name}.py", script.parent / name / "__init__.py"):
            if sibling.is_file():
                text += sibling.read_text()
    if script.name == "__main__.py":  # a package's entry point reads its modules' flags
        text += "".join(p.read_text() for p in script.parent.glob("*.py"))
    return text


def command_problems(cmd: str, root: Path = ROOT, targets: set[str] | None = None) -> list[str]:
    targets = make_targets(root) if targets is None else targets
    out = []
    words = cmd.split()
    if words[0] == "make":
        for word in words[1:]:
            if "=" not in word and not word.startswith("-") and word not in targets:
                out.append(f"`{cmd}`: the Makefile has no target {word!r}")
        return out
    source, script = None, None
    m = _PY.match(cmd)
    if m:
        args = m.group(1).split()
        if args[0] == "-m":
            if args[1].split(".")[0] in {"benchmarks", "examples", "jcnn", "tools", "tests"}:
                source = _module_source(args[1], root)
                if source is None:
                    out.append(f"`{cmd}`: no module {args[1]} in the repository")
        elif args[0].endswith(".py"):
            source, script = root / args[0], args[0]
            if not source.is_file():
                out.append(f"`{cmd}`: no script {args[0]}")
                source = None
        if source is not None:
            text = _sources(source, root)
            for flag in re.findall(r"(?<!\S)(--[\w-]+)", " ".join(args)):
                if f'"{flag}"' not in text and f"'{flag}'" not in text:
                    out.append(f"`{cmd}`: {source.relative_to(root)} has no option {flag}")
    for word in words:
        if word != script and _REPO_PATH.match(word) and not (root / word).exists():
            out.append(f"`{cmd}`: no file {word}")
    return out


def problems(text: str, base: Path, root: Path = ROOT, max_lines: int | None = None) -> list[str]:
    """Everything wrong with the links and commands of a Markdown text that lives
    in folder ``base`` of the repository at ``root`` (and its length, if limited)."""
    out = []
    if max_lines is not None and len(text.splitlines()) > max_lines:
        out.append(f"{len(text.splitlines())} lines (at most {max_lines})")
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked here
            continue
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else None
        if file is not None and not file.exists():
            out.append(f"link {target}: no file {path}")
            continue
        if anchor:
            page = file.read_text() if file is not None else text
            if anchor not in {slug(h) for h in _HEADING.findall(_FENCE.sub("", page))}:
                out.append(f"link {target}: no heading with anchor #{anchor}")
    targets = make_targets(root)
    for cmd in commands(text):
        out += command_problems(cmd, root, targets)
    return out


# ----------------------------------------------------------------- the checks
def test_readme_is_short_and_its_links_and_commands_are_true():
    assert problems(README.read_text(), ROOT, max_lines=MAX_README_LINES) == []


@pytest.mark.parametrize("page", ["BENCHMARKS.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))])
def test_docs_commands_are_true(page):
    """The docs' and BENCHMARKS.md's commands (their links mkdocs --strict checks)."""
    text = (ROOT / page).read_text()
    assert [p for p in problems(text, (ROOT / page).parent) if not p.startswith("link ")] == []


def test_readme_names_its_two_setup_commands():
    cmds = commands(README.read_text())
    assert "make demo" in cmds and "make test" in cmds


def test_the_checker_finds_what_is_wrong():
    doctored = "\n".join([
        "# Title", "## A heading", "",
        "[fine](docs/index.md#conventions) [fine too](#a-heading)",
        "![pic](docs/pictures/7_backprop.png)",
        "[gone](docs/nothere.md) [bad anchor](docs/index.md#no-such-heading) [x](#nope)",
        "[web](https://example.com/missing.md)",
        "```bash", "make demo   # fine", "make deploy", "python examples/nothere.py",
        "python examples/train_digits.py --epochs 3 --warp-speed", "```",
        "Run `python -m benchmarks.nothere` or `python -m benchmarks --suite gpu`,",
        "`python -m pytest tests/test_nothere.py` and `.venv/bin/python tools/nothere.py`.",
    ])
    found = problems(doctored + "\nline" * MAX_README_LINES, ROOT, max_lines=MAX_README_LINES)
    expected = ["no file docs/nothere.md", "no heading with anchor #no-such-heading",
                "no heading with anchor #nope", "no target 'deploy'",
                "no script examples/nothere.py", "has no option --warp-speed",
                "no module benchmarks.nothere", "no file tests/test_nothere.py",
                "no script tools/nothere.py", f"(at most {MAX_README_LINES})"]
    for e in expected:
        assert sum(e in p for p in found) == 1, (e, found)
    assert len(found) == len(expected), found
    assert problems("[fine](README.md)\n`make test`", ROOT, max_lines=2) == []


def test_slug_follows_github():
    assert slug("Math → code") == "math--code"
    assert slug("Set-up: two commands") == "set-up-two-commands"
    assert slug("`make thorough`") == "make-thorough"


# ----------------------------------------------------------------- the snippet
def test_readme_snippet_runs_and_gives_a_real_gradient(capsys):
    code = re.search(r"## Fifteen lines\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code, "the README's first snippet is missing"
    env = {}
    exec(code.group(1), env)  # noqa: S102 - the README is this project's own file
    assert capsys.readouterr().out.strip() == "16"
    dw, db = env["dw"], env["db"]
    assert dw.shape == (3, 3, 3, 16) and db.shape == (16,)
    # the gradient is not (numerically) zero: the head's weights are not all equal
    assert float(jnp.abs(dw).max()) > 1e-3, float(jnp.abs(dw).max())
    assert np.isfinite(np.asarray(dw)).all()


def test_readme_names_the_article():
    text = README.read_text()
    assert "Gentle Dive into Math Behind Convolutional Neural Networks" in text
    assert "Skalski" in text
