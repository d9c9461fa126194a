"""Sphinx roles in jcnn's docstrings become cross-references in the built docs.

Many docstrings name other functions with Sphinx roles (:func:`conv`, :class:`Layer`,
:mod:`jcnn.nn`, :data:`TILE_CHANNELS`); mkdocstrings reads Markdown, where a role
would show as raw text. This griffe extension (mkdocs.yml: mkdocstrings → python →
extensions) rewrites every role once the package is loaded:

- a name on jcnn's public surface (``PUBLIC_MODULES``' ``__all__``) links to the
  heading that documents it under its public name: ``conv`` in any module →
  ``jcnn.conv``, ``serial`` → ``jcnn.nn.serial``.  A public name that no page
  documents fails ``mkdocs build --strict``;
- any other name griffe finds (an internal helper) links where a page documents
  it and reads as plain code elsewhere;
- a name griffe cannot find reads as plain code.

``~jcnn.nn.residual`` shows ``residual``, as in Sphinx.  RST's literal-block marker
(``Forward::`` before an indented block) becomes ``Forward:``.

New docstrings need none of this: write plain backticks (``jcnn.conv``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# the modules whose __all__ the reference documents, the top level first so that
# a function exported twice is documented under its shortest name
PUBLIC_MODULES = ("jcnn", "jcnn.nn", "jcnn.training", "jcnn.data", "jcnn.checkpoint",
                  "jcnn.augment", "jcnn.viz")

ROLE = re.compile(r":(?:py:)?(?P<role>[a-z]+):`(?P<tilde>~?)(?P<target>[^`]+)`")
LITERAL_MARKER = re.compile(r"(?m)(?<=\S)::$")

# (identifier, public) for a target, or None: see the module docstring
Resolver = Callable[[str], "tuple[str, bool] | None"]


def convert(text: str, resolve: Resolver) -> str:
    """``text`` with every Sphinx role turned into an autorefs link or plain code.

    >>> convert("see :func:`~jcnn.nn.serial` and :data:`X`::",
    ...         lambda t: ("jcnn.nn.serial", True) if t.endswith("serial") else None)
    'see [`serial`][jcnn.nn.serial] and `X`:'
    """

    def link(m: re.Match) -> str:
        target = m["target"].strip()
        shown = target.rsplit(".", 1)[-1] if m["tilde"] else target
        found = resolve(target)
        if found is None:
            return f"`{shown}`"
        identifier, public = found
        if public:
            return f"[`{shown}`][{identifier}]"
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    return LITERAL_MARKER.sub(":", ROLE.sub(link, text))


try:
    import griffe
except ImportError:  # the converter above is tested without mkdocstrings installed
    griffe = None

if griffe is not None:

    def _canonical(obj) -> str:
        """Where an object is defined (an alias's target, resolved as far as it goes)."""
        if not obj.is_alias:
            return obj.path
        try:
            return obj.final_target.path
        except griffe.AliasResolutionError:  # e.g. names bound by tuple unpacking
            return obj.target_path

    class SphinxRoles(griffe.Extension):
        """Rewrite the roles of every docstring in the ``jcnn`` package."""

        def on_package(self, *, pkg, **kwargs) -> None:
            if pkg.path != "jcnn":
                return

            def find(path):
                if path == "jcnn":
                    return pkg
                if not path.startswith("jcnn."):
                    return None
                try:
                    return pkg[path.removeprefix("jcnn.")]
                except (KeyError, ValueError, griffe.AliasResolutionError):
                    return None

            public = {}  # canonical path → the public path it is documented under
            for mod_path in PUBLIC_MODULES:
                module = find(mod_path)
                public.setdefault(module.path, module.path)
                for name in module.exports or ():
                    name = str(name)
                    member = module.members.get(name)
                    if member is not None:
                        public.setdefault(_canonical(member), f"{mod_path}.{name}")

            def resolver(obj) -> Resolver:
                scopes = [o.path for o in _scopes(obj)]

                def resolve(target):
                    if target == "jcnn" or target.startswith("jcnn."):
                        candidates = [target]
                    else:
                        candidates = [f"{s}.{target}" for s in (*scopes, *PUBLIC_MODULES)]
                    for path in candidates:
                        found = find(path)
                        if found is not None:
                            canonical = _canonical(found)
                            if canonical in public:
                                return public[canonical], True
                            return canonical, False
                    return None

                return resolve

            for obj in _walk(pkg):
                if obj.docstring is not None and ":" in obj.docstring.value:
                    obj.docstring.value = convert(obj.docstring.value, resolver(obj))

    def _scopes(obj):
        """The object if it holds members, then its parents up to the module."""
        while obj is not None:
            if obj.is_class or obj.is_module:
                yield obj
                if obj.is_module:
                    return
            obj = obj.parent

    def _walk(obj):
        """Every object defined in the package (not aliases), depth first."""
        yield obj
        for member in obj.members.values():
            if not member.is_alias:
                yield from _walk(member)
