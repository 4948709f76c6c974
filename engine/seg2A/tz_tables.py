"""tzdata's zone tables: which tzids belong to which country, link names, the zone list.

Source: the pinned `tzdata` wheel (`zone.tab`, `zone1970.tab`, `tzdata.zi`), read through
importlib.resources so the wheel, not the host's /usr/share/zoneinfo, answers.

- `zone1970.tab` lists several countries per canonical zone ("BA,HR,ME,MK,RS,SI  Europe/Belgrade");
  `zone.tab` lists one country per zone and keeps link names (Europe/Sarajevo for BA). A tzid
  belongs to a country if either table pairs them, after both sides are mapped to canonical names.
- The principal tzid of a country is its first row in `zone.tab` (tzdata lists the most populous
  zone first where geography allows); the chapter's country fallback uses it.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import polars as pl

TABLE_FILES = ("zone.tab", "zone1970.tab", "tzdata.zi")


def strings(a) -> pl.Series:
    """A String Series from a str/object array or Series (object arrays may start with None)."""
    if isinstance(a, pl.Series):
        return a.cast(pl.String)
    return pl.Series(np.asarray(a, dtype=object).tolist(), dtype=pl.String)


def _zoneinfo_file(name: str) -> bytes:
    return (resources.files("tzdata") / "zoneinfo" / name).read_bytes()


def _tab_rows(name: str) -> list[tuple[list[str], str]]:
    rows = []
    for line in _zoneinfo_file(name).decode("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        rows.append((cols[0].split(","), cols[2]))
    return rows


@dataclass(frozen=True)
class ZoneTables:
    links: dict[str, str]                 # link name -> canonical zone (tzdata.zi `L` lines)
    country_zones: dict[str, tuple[str, ...]]   # iso2 -> canonical tzids, principal first
    zones: frozenset[str]                 # every name tzdata can load (zones and links)
    principals: dict[str, str]            # iso2 -> first zone.tab name (link names kept: Europe/Sarajevo)

    def canonical(self, tzid: str) -> str:
        return self.links.get(tzid, tzid)

    def principal(self, iso2: str) -> str | None:
        return self.principals.get(iso2)

    def member_mask(self, tzids, isos) -> np.ndarray:
        """bool per row: is the tzid (any name, canonicalised) listed for that row's country?"""
        pairs = [f"{iso}|{tz}" for iso, zs in self.country_zones.items() for tz in zs]
        tz = strings(tzids).replace(self.links)
        key = strings(isos) + "|" + tz
        return key.is_in(pairs).fill_null(False).to_numpy()


@functools.lru_cache(maxsize=1)
def zone_tables() -> ZoneTables:
    links, zones = {}, set()
    for line in _zoneinfo_file("tzdata.zi").decode("utf-8").splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "Z":
            zones.add(f[1])
        elif len(f) >= 3 and f[0] == "L":
            links[f[2]] = f[1]
            zones.add(f[2])
    canon = lambda tz: links.get(tz, tz)
    country: dict[str, list[str]] = {}
    principals: dict[str, str] = {}
    for isos, tz in _tab_rows("zone.tab"):
        principals.setdefault(isos[0], tz)
    for isos, tz in _tab_rows("zone.tab") + _tab_rows("zone1970.tab"):   # zone.tab first: principal
        for iso in isos:
            lst = country.setdefault(iso, [])
            if canon(tz) not in lst:
                lst.append(canon(tz))
    return ZoneTables(links, {k: tuple(v) for k, v in sorted(country.items())}, frozenset(zones), principals)


def tables_digest() -> dict[str, str]:
    """SHA-256 of each zone table read, for sealing (`tzdata/zoneinfo/<name>` -> hex)."""
    return {f"tzdata/zoneinfo/{n}": hashlib.sha256(_zoneinfo_file(n)).hexdigest() for n in TABLE_FILES}
