"""Deep reconstruction networks trained end to end on simulated snapshots."""
