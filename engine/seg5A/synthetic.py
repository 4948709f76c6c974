"""Synthetic upstream frames shaped like 1A `merchant_ids`, 2A `site_timezones`, 3A `zone_alloc` and
3B `virtual_classification_3B`, for 5A's tests, benchmark and scale calibration. Never read by a state.

Shapes follow INTERFACES §5 (≈2 sites per merchant, ≈1.25 (merchant, country) pairs, a few % virtual).
numpy's seeded Generator is fine here: this is fixture data, not world randomness.
"""
from __future__ import annotations

import numpy as np
import polars as pl

# country -> tzids (multi-tz countries go through zone_alloc, the others through site_timezones)
COUNTRY_TZ = {
    "US": ["America/Chicago", "America/Denver", "America/Los_Angeles", "America/New_York", "America/Phoenix"],
    "AU": ["Australia/Adelaide", "Australia/Perth", "Australia/Sydney"],
    "BR": ["America/Manaus", "America/Sao_Paulo"],
    "CA": ["America/Toronto", "America/Vancouver"],
    "GB": ["Europe/London"], "DE": ["Europe/Berlin"], "FR": ["Europe/Paris"], "IN": ["Asia/Kolkata"],
    "JP": ["Asia/Tokyo"], "SA": ["Asia/Riyadh"], "AE": ["Asia/Dubai"], "NP": ["Asia/Kathmandu"],
    "NZ": ["Pacific/Auckland"], "ZA": ["Africa/Johannesburg"], "MX": ["America/Mexico_City"],
}
COUNTRY_W = {"US": 8, "GB": 3, "DE": 3, "FR": 3, "IN": 3, "JP": 2, "BR": 2, "AU": 2, "CA": 2, "MX": 1.5, "SA": 1,
             "AE": 1, "ZA": 1, "NZ": 0.5, "NP": 0.3}
MCCS = np.array([5411, 5812, 5814, 5541, 5542, 5311, 5651, 5732, 5912, 5999, 4111, 4121, 4511, 7011, 3501, 4814,
                 4900, 5815, 5817, 5964, 6011, 6012, 7372, 7832, 7922, 7997, 8062, 8220, 9311, 9399, 5200, 5310,
                 7512, 4722, 5813, 5945, 7230, 7538, 8011, 5047])


def synthetic_upstream(n_merchants: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    rng = np.random.Generator(np.random.PCG64(seed))
    countries = sorted(COUNTRY_W)
    cw = np.array([COUNTRY_W[c] for c in countries], float)
    mid = (np.arange(n_merchants, dtype=np.uint64) * np.uint64(7919) + np.uint64(100_003))
    mcc = MCCS[rng.integers(0, len(MCCS), n_merchants)]
    cnp = rng.random(n_merchants) < np.where(np.isin(mcc, [5815, 5817, 5964, 7372, 4814]), 0.8, 0.2)
    home = np.array(countries)[rng.choice(len(countries), n_merchants, p=cw / cw.sum())]
    merchants = pl.DataFrame({"merchant_id": mid, "mcc": mcc.astype(np.int32),
                              "channel": np.where(cnp, "card_not_present", "card_present"),
                              "home_country_iso": home})
    # sites: 1 + geometric extra, a second country for 20 % of merchants
    za, st = [], []
    for i in range(n_merchants):          # fixture generator: per-merchant loop is fine here
        cs = [home[i]]
        if rng.random() < 0.2:
            cs.append(countries[int(rng.choice(len(countries), p=cw / cw.sum()))])
        for c in dict.fromkeys(cs):
            n = int(rng.geometric(0.6))
            tzs = COUNTRY_TZ[c]
            counts = np.bincount(rng.integers(0, len(tzs), n), minlength=len(tzs))
            if len(tzs) > 1:
                za += [(int(mid[i]), c, tz, int(k), n) for tz, k in zip(tzs, counts) if k > 0 or rng.random() < 0.1]
            else:
                st += [(int(mid[i]), c, j + 1, tzs[0]) for j in range(n)]
    zone_alloc = pl.DataFrame(za, schema={"merchant_id": pl.UInt64, "legal_country_iso": pl.String, "tzid": pl.String,
                                          "zone_site_count": pl.Int32, "site_count": pl.Int32}, orient="row")
    site_tz = pl.DataFrame(st, schema={"merchant_id": pl.UInt64, "legal_country_iso": pl.String,
                                       "site_order": pl.Int32, "tzid": pl.String}, orient="row")
    vm = rng.random(n_merchants)
    mode = np.where(vm < 0.02, "VIRTUAL_ONLY", np.where(vm < 0.04, "HYBRID", "NON_VIRTUAL"))
    virtual = pl.DataFrame({"merchant_id": mid, "is_virtual": mode != "NON_VIRTUAL", "virtual_mode": mode})
    return {"merchant_ids": merchants, "zone_alloc": zone_alloc, "site_timezones": site_tz,
            "virtual_classification_3B": virtual}
