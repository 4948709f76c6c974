"""What the README shows works after the README's install: its DuckDB and Polars snippets run
against a built tiny world, and its commands name real rules and modules."""
from __future__ import annotations

import os
import re

from engine.core.context import ROOT

README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_duckdb_snippets_run(world_a):
    import duckdb
    blocks = _blocks("sql")
    assert blocks
    for sql in blocks:
        rows = duckdb.sql(sql.replace("'results/", f"'{world_a.results}/")).fetchall()
        assert rows


def test_polars_snippets_run(world_a, monkeypatch):
    blocks = _blocks("python")
    assert blocks
    monkeypatch.chdir(world_a.results.parent)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_report_dependencies_are_installed():
    import pygments  # noqa: F401  (snakemake --report needs it)
    assert os.path.exists(ROOT / "report" / "workflow.rst")
