"""Optional neural renderer: portrait image + motion -> portrait video (not yet implemented)."""
