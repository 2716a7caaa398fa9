"""The ``snapcap`` command line: one module per command, shared options built from the registries.

* :mod:`snapcap.cli.main` — the parser and :func:`main` (the console script);
* :mod:`snapcap.cli.options` — every option that more than one command takes, with one meaning
  (corpus, camera, mask file, reconstruction parameters, device, samples);
* one module per command: ``compare``, ``simulate``, ``dataset``, ``reconstruct``, ``train``,
  ``caption``, ``eval``, ``capture``, ``doctor``.

A command module parses and prints; the work is library code (:mod:`snapcap.datasets.samples`,
:mod:`snapcap.caption.records`, :mod:`snapcap.caption.registry`...). Add a command by writing a
module with ``add_parser(subparsers)`` and listing it in :data:`snapcap.cli.main.COMMANDS`.
"""

from __future__ import annotations

from snapcap.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
