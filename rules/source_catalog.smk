"""source_catalog rules (being written)."""
