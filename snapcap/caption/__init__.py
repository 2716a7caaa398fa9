"""Captioning from frames, reconstructions or coded snapshots."""
