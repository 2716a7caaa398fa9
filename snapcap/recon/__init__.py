"""Reconstruction of video frames from CACTI snapshots."""
