"""Every ```python block of README.md, docs/*.md and docs/guide/*.md runs verbatim.

One test per page: its blocks run in order in one fresh namespace (as a reader would
paste them into a notebook), in a temporary directory (files they write land there,
not in the repository), with the Agg backend. A traceback points at the page and its
line.

A block that cannot run here (network, a cluster, big data) opts out *visibly in the
page*: write it as ```{code-block} python (MyST renders it the same) or as ```text.
Only fences that read exactly ```python (optionally indented, e.g. in a list) run.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "guide").glob("*.md")]
)
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})python[ \t]*$")
_DEEP = re.compile(r"\.fit\(|xstf\.models\.|load_model|\.predict\(")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the first code line, code)`` of each ```python fence, in order."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        body, j = [], i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"unclosed ```python fence at line {i + 1}")
        blocks.append((i + 2, textwrap.dedent("\n".join(body)) + "\n"))
        i = j + 1
    return blocks


def test_block_extraction_handles_indent_and_opt_out():
    text = "\n".join(
        [
            "intro",
            "```python",
            "a = 1",
            "```",
            "- item:",
            "",
            "  ```python",
            "  b = a + 1",
            "  ```",
            "```{code-block} python",
            "import not_run",
            "```",
            "```text",
            "neither",
            "```",
        ]
    )
    assert python_blocks(text) == [(3, "a = 1\n"), (8, "b = a + 1\n")]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_snippets_run_verbatim(page, tmp_path, monkeypatch):
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    if not blocks:
        return  # nothing to run on this page
    if any(_DEEP.search(code) for _, code in blocks):
        pytest.importorskip("torch", reason=f"{page.name} uses the deep models (xstf[torch])")
    import matplotlib

    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    try:
        for line, code in blocks:
            # pad so that the traceback's line numbers are the page's
            exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)
    finally:
        plt.close("all")
