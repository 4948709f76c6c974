"""Print the three realism figures of a built world (issue 8): sites at sea, MCC-group shares,
outlets per country against the card-market weight.  Usage: python scripts/realism_figures.py [results]"""
import sys
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from engine.seg1A import realism
from engine.seg1B.landmask import sea_figures

res = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
read = lambda seg, ds: pl.read_parquet(res / seg / ds / "*.parquet")
cfg = lambda name: yaml.safe_load(Path("config/1A", name).read_text())
mcc = np.sort(read("reference", "mcc_codes")["mcc"].to_numpy())
f = realism.figures(read("1A", "merchant_ids"), read("1A", "outlet_catalogue"), read("1A", "country_ref"), mcc,
                    cfg("merchant_mix.yaml"), cfg("card_market.yaml"), cfg("validation.yaml")["realism"])
s = sea_figures(read("1B", "site_locations"))
print(f"sites at sea (GLOBE 1 km mask): {s['sea_share']:.4%} ({s['sites_at_sea']} of {s['sites']}) {s['by_country']}")
print(f"core groups (grocery+restaurants+fuel+general retail): {f['core_group_share']:.2%}; "
      f"max rare MCC: {f['max_rare_mcc_share']:.3%} (mcc {f['max_rare_mcc']}); "
      f"digital goods CNP: {f['digital_cnp_share']:.1%} of {f['digital_merchants']}")
print(f"Spearman(outlets per country, card-market weight): {f['spearman_outlets_vs_card_market']:.3f} over "
      f"{f['countries_with_outlets']} countries; max outlet/weight share ratio, countries < 1M people: "
      f"{f['max_small_country_ratio']:.2f}x ({f['max_small_country']}, {f['max_small_country_outlets']} outlets; "
      f"expected floored at {cfg('validation.yaml')['realism']['small_country_min_expected']}); unfloored max "
      f"{f['max_small_country_raw_ratio']:.1f}x; all of them together {f['small_countries_ratio']:.2f}x")
print("group shares:", {k: round(v, 4) for k, v in sorted(f["group_shares"].items(), key=lambda kv: -kv[1])})
