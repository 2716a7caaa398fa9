"""clip4videocap (placeholder: the model is being written)."""
from __future__ import annotations


def add_arguments(parser):
    pass


def image_size(options):
    return 64


def train(samples, out_dir, options, progress):
    from snapcap.errors import ConfigError

    raise ConfigError("clip4videocap is being written: not available yet")


def load(path, device):
    from snapcap.errors import ConfigError

    raise ConfigError("clip4videocap is being written: not available yet")
