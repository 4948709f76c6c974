"""Segment 2A: civil time for every site (RNG-free)."""
