"""Small self-contained HTML pages for `snakemake --report` (no plotting dependency)."""
from __future__ import annotations

import html


def _cell(v) -> str:
    return html.escape(f"{v:.4g}" if isinstance(v, float) else "" if v is None else str(v))


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cls = ' class="fail"' if r.get("verdict") == "FAIL" or r.get("pass") is False else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def bars(items: list[tuple[str, float]], unit: str = "") -> str:
    """Horizontal bar chart in pure HTML/CSS."""
    if not items:
        return "<p><em>none</em></p>"
    top = max(v for _, v in items) or 1
    rows = "".join(
        f'<tr><td>{html.escape(str(k))}</td><td><div class="bar" style="width:{300 * v / top:.0f}px"></div></td>'
        f"<td>{v:,.0f}{unit}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def page(title: str, sections: list[tuple[str, str]]) -> str:
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}tr.fail{background:#fdd}"
             ".bar{background:#4a7ab5;height:12px}")
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


_COLOURS = ("#4a7ab5", "#d9822b", "#3f9f5f", "#b5443a")


def lines(series: list[tuple[str, list[float]]], x_label: str = "", width: int = 720, height: int = 180) -> str:
    """Inline SVG line chart of equal-length series on one y axis, with a legend."""
    series = [(k, list(v)) for k, v in series if len(v)]
    if not series:
        return "<p><em>none</em></p>"
    n = max(len(v) for _, v in series)
    top = max(max(v) for _, v in series) or 1.0
    pad = 30

    def pts(v):
        dx = (width - pad) / max(n - 1, 1)
        return " ".join(f"{pad + i * dx:.1f},{height - 15 - (height - 25) * y / top:.1f}" for i, y in enumerate(v))
    paths = "".join(f'<polyline fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="1.3" '
                    f'points="{pts(v)}"/>' for i, (_, v) in enumerate(series))
    legend = " ".join(f'<span style="color:{_COLOURS[i % len(_COLOURS)]}">&#9632; {html.escape(k)}</span>'
                      for i, (k, _) in enumerate(series))
    axis = (f'<text x="0" y="12" font-size="10">{top:,.3g}</text><text x="0" y="{height - 15}" font-size="10">0</text>'
            f'<text x="{pad}" y="{height - 2}" font-size="10">{html.escape(x_label)}</text>')
    return f'<svg width="{width}" height="{height}">{axis}{paths}</svg><div>{legend}</div>'
