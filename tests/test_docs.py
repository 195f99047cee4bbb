"""The README is a newcomer's first five minutes, and the docs it points to are reachable.

Pins issue 26 item 9: the README is at most 12 KB and starts with the two commands; every relative link in
README.md and docs/*.md (images included) names a file that exists; every page in docs/ is linked from the
README or another page; the README's test command is the one CI runs (.ci/run).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_BYTES = 12 * 1024

COMMANDS_BLOCK = """# LOTUS

```bash
make run    # installs everything (a venv in .venv) and serves the dashboard on the embedded default: http://localhost:8501
make test   # installs everything (plus Debian's Chromium for the browser tests) and runs the whole test suite
```
"""

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(path: Path) -> list[str]:
    """The targets of the Markdown links and images in ``path`` that point into the repository (code blocks
    left out: a ``[x](y)`` there is code, not a link)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_readme_is_at_most_12_kib():
    assert len(README.read_bytes()) <= MAX_README_BYTES


def test_readme_starts_with_the_two_commands():
    assert README.read_text(encoding="utf-8").startswith(COMMANDS_BLOCK)


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file(path):
    links = relative_links(path)
    broken = [t for t in links if not (path.parent / t.split("#", 1)[0]).exists()]
    assert broken == [], f"{path.relative_to(ROOT)} links to missing files: {broken}"


def test_link_parser_reads_links_and_images_and_skips_urls_and_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md) ![shot](img/s.png \"title\") [web](https://x.org) [anchor](#top)\n"
                    "[part](b.md#section) `code`\n```python\nx = d[k](y)\n```\n")
    assert relative_links(page) == ["docs/a.md", "img/s.png", "b.md#section"]


def test_every_docs_page_is_linked_from_the_readme_or_another_page():
    targets = {(p.parent / t.split("#", 1)[0]).resolve() for p in [README, *DOCS] for t in relative_links(p)
               if (p.parent / t.split("#", 1)[0]).resolve() != p.resolve()}
    orphans = [p.name for p in DOCS if p.resolve() not in targets]
    assert orphans == []


def test_readme_test_command_is_what_ci_runs():
    """CI (.ci/run) deletes the venv, hides hand-installed datasets and then runs one command, its last line; the
    README's second command must be that very command, so what a newcomer types is what CI checks."""
    block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    readme_commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert readme_commands == ["make run", "make test"]
    assert ci_lines[-1] == readme_commands[1]
    assert "export LOTUS_NO_SYSTEM_DATA=1" in ci_lines
