"""Segment 5B: realised arrivals (chapter 5B). Logic and kernels; states are wired by the lead."""
