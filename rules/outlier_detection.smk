"""outlier_detection rules (being written)."""
