"""The README's Python example runs as written."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from conftest import REPO


def test_the_readme_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python (`mlx_asr`)") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(REPO)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    out = printed.getvalue()
    assert "ask not what your country can do for you" in out
    assert "(' And', 0.0, " in out
    assert "00:00:00,000 --> " in out
