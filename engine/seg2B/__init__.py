"""Segment 2B: the routing fabric (site weights, day effects, group weights, router)."""
