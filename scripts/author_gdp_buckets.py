"""Recompute config/reference/gdp_bucket_map.csv (dev only; needs jenkspy). Run from the repo root."""
from engine.refdata.gdp_buckets import author

print(author("config/reference"))
