"""The tiny world builds 1A..5B whatever the seed: a new seed (or any config edit: it changes
parameter_hash, hence every RNG stream) must not trip a cap meant for large samples or an
empty-subset edge case. Each build is the tiny preset in-process (~15 s)."""
from __future__ import annotations

import polars as pl
import pytest
from conftest import build

from engine.__main__ import verify
from engine.core import datasets

ALL = ("1A", "1B", "2A", "2B", "3A", "3B", "5A", "5B")

# Seeds that once failed, each for its own cause (found by building seeds 1..60):
#   10: 2A.S1.FALLBACK_CAP_EXCEEDED, 2 of 184 sites fell back (1.09% > 1%): the cap now allows 3 s.e. at n sites;
#   18, 21: no virtual merchant; 3B's alias index lost its GLOBAL row (null-typed empty frame).
ONCE_FAILED = (10, 18, 21)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", ONCE_FAILED)
def test_tiny_world_builds_and_verifies_for_seeds_that_once_failed(seed, tmp_path, capsys):
    ctx = build(tmp_path / "results", segments=ALL, seed=seed)
    assert verify(ctx.results) == 0, capsys.readouterr().out


@pytest.mark.seeds
def test_world_without_virtual_merchants_builds_through_5B(config_copy, tmp_path, capsys):
    """Every MCC rule physical: 3B publishes an empty edge catalogue, an empty blob whose index has only
    its GLOBAL row, and 5B routes every arrival to a physical site."""
    p = config_copy / "config/3B/mcc_channel_rules.yaml"
    p.write_text(p.read_text().replace("decision: virtual", "decision: physical")
                 .replace("decision: hybrid", "decision: physical"))
    ctx = build(tmp_path / "results", root=config_copy, segments=ALL)
    assert verify(ctx.results) == 0, capsys.readouterr().out
    res = ctx.results
    assert not datasets.load(res, "virtual_classification_3B")["is_virtual"].any()
    assert datasets.load(res, "edge_catalogue_3B").height == 0
    idx = datasets.load(res, "edge_alias_index_3B")
    assert idx["scope"].cast(pl.String).to_list() == ["GLOBAL"] and idx["blob_length_bytes"][0] == 0
    assert (res / "3B/edge_alias_blob/edge_alias_blob_3B.bin").read_bytes() == b""
    ev = datasets.load(res, "arrival_events_5B")
    assert ev.height > 0 and not ev["is_virtual"].any()
