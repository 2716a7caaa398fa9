"""Real CACTI rigs: capture drivers, rig emulation and calibration."""
