"""tweakreg rules (being written)."""
