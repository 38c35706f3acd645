"""skymatch rules (being written)."""
