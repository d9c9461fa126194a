"""The documentation cannot drift: docstring examples and the tutorial run, every
public name is on a reference page, and the built site shows no Sphinx role raw."""

import doctest
import html
import importlib
import importlib.util
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jcnn

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load_roles_extension():
    """docs/_ext/sphinx_roles.py: its converter needs no mkdocstrings."""
    spec = importlib.util.spec_from_file_location("sphinx_roles", DOCS / "_ext" / "sphinx_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


roles = _load_roles_extension()
MODULES = sorted(m.name for m in pkgutil.iter_modules(jcnn.__path__))
# a role as Sphinx writes it (any role name, optional "py:" domain); what must never show
RAW_ROLE = re.compile(r":(?:py:)?[a-z]+:`")


# ----------------------------------------------------------- executed examples
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"jcnn.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if module.__name__ in roles.PUBLIC_MODULES:  # the documented modules show examples
        assert result.attempted > 0, f"{module.__name__} has no example"


def test_tutorial_code_runs_in_order():
    """docs/tutorial.md's code blocks, executed as one program (their asserts hold)."""
    text = (DOCS / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 12  # the imports and one per section, §1–§11
    env = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"tutorial block {i}", "exec"), env)  # noqa: S102
        except Exception as e:  # name the block that broke
            raise AssertionError(f"tutorial block {i} failed:\n{block}") from e


# ------------------------------------------------------ every public name, a page
def public_names() -> list[str]:
    """``module.name`` for every name in the ``__all__`` of the modules the reference
    documents (read now: names other modules add appear here without an edit)."""
    names = []
    for path in roles.PUBLIC_MODULES:
        module = importlib.import_module(path)
        names += [f"{path}.{n}" for n in module.__all__]
    return names


def documented(pages: dict[str, str]) -> set[str]:
    """Identifiers a page documents: ``::: jcnn.name`` blocks and ``{#jcnn.name}``
    anchors (names documented in a table)."""
    found = set()
    for text in pages.values():
        found |= set(re.findall(r"^:::\s+(\S+)", text, re.M))
        found |= set(re.findall(r"\{#(jcnn[\w.]*)\}", text))
    return found


def _pages() -> dict[str, str]:
    return {str(p.relative_to(DOCS)): p.read_text() for p in DOCS.rglob("*.md")}


def test_every_public_name_is_on_a_reference_page():
    have = documented(_pages())
    missing = [n for n in public_names() if n not in have]
    assert not missing, ("not on any docs page (add a `::: name` line to its topic's page "
                         f"under docs/api/): {missing}")


def test_the_page_check_can_fail():
    pages = {"a.md": "::: jcnn.conv\n| [](){#jcnn.nn.Relu} `jcnn.nn.Relu` |",
             "b.md": "`jcnn.relu` is only named here"}
    assert documented(pages) == {"jcnn.conv", "jcnn.nn.Relu"}
    assert "jcnn.nn.Conv" in public_names() and "jcnn.conv" in public_names()


# ------------------------------------------------------- Sphinx roles → links
def test_roles_become_links_or_code():
    public = {"conv": ("jcnn.conv", True), "jcnn.nn.serial": ("jcnn.nn.serial", True),
              "patches": ("jcnn.window.patches", False)}
    text = ("Calls :func:`conv` and :func:`~jcnn.nn.serial`; :func:`patches` inside; "
            ":data:`NOWHERE`, :py:class:`conv`.\n\nForward::\n\n    Z = W * A\n")
    out = roles.convert(text, public.get)
    assert out == ("Calls [`conv`][jcnn.conv] and [`serial`][jcnn.nn.serial]; "
                   '<autoref identifier="jcnn.window.patches" optional><code>patches</code>'
                   "</autoref> inside; `NOWHERE`, [`conv`][jcnn.conv].\n\nForward:\n\n"
                   "    Z = W * A\n")
    assert doctest.testmod(roles).failed == 0


def test_no_docstring_keeps_a_role_once_converted():
    """Every role in jcnn's docstrings is one the converter rewrites."""
    for name in MODULES:
        module = importlib.import_module(f"jcnn.{name}")
        for obj in [module, *vars(module).values()]:
            doc = getattr(obj, "__doc__", None) if getattr(obj, "__module__", module.__name__) \
                == module.__name__ else None
            if not isinstance(doc, str):
                continue
            left = RAW_ROLE.findall(roles.convert(doc, lambda t: None))
            assert not left, (module.__name__, getattr(obj, "__name__", obj), left)
    assert RAW_ROLE.search(":func:`x`") and not RAW_ROLE.search("`x`: a name")


# ------------------------------------------------------------- the built site
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once per test session as `make docs` builds it (--strict)."""
    pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra")
    out = tmp_path_factory.mktemp("site")
    # no -q: mkdocs then drops warnings before --strict counts them
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                          "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def _html(site: Path) -> dict[str, str]:
    return {str(p.relative_to(site)): p.read_text() for p in site.rglob("*.html")}


def test_site_shows_no_raw_sphinx_role(site):
    pages = _html(site)
    assert "api/layers/index.html" in pages and "architecture/index.html" in pages
    raw = re.compile(r":(?:py:)?[a-z]+:(?:<code>|`)")
    bad = {page: raw.findall(text)[:3] for page, text in pages.items() if raw.search(text)}
    assert not bad, bad


def test_site_headings_read_public_names_and_roles_link(site):
    pages = _html(site)
    ids = {i for text in pages.values() for i in re.findall(r'\bid="(jcnn[\w.]*)"', text)}
    missing = [n for n in public_names() if n not in ids]
    assert not missing, f"no anchor in the built site: {missing}"
    assert "jcnn.convolution.conv" not in ids  # documented where users type it: jcnn.conv
    layers = pages["api/layers/index.html"]
    # nn's module docstring says :func:`serial` and :func:`residual`: now links
    assert re.search(r'<a [^>]*href="#jcnn\.nn\.serial"[^>]*><code>serial</code></a>', layers)
    assert re.search(r'<a [^>]*href="#jcnn\.nn\.residual"[^>]*><code>residual</code></a>',
                     layers)
    heading = re.search(r'<h3 id="jcnn\.conv"[^>]*>(.*?)</h3>',
                        pages["api/convolution/index.html"], re.S)
    assert heading and "jcnn.conv" in html.unescape(re.sub(r"<[^>]+>", "", heading.group(1)))
