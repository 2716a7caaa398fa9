"""The package's structure: imports run one way, modules talk through public names, registries reach the CLI."""

from __future__ import annotations

import ast
import dataclasses
import shlex
from pathlib import Path

import pytest

import snapcap

PACKAGE = Path(snapcap.__file__).parent
README = PACKAGE.parent / "README.md"

# Layers, one way down (DESIGN.md): a module may import its own layer or the ones before it.
LAYERS = [
    "errors",
    "backend",
    "matfile",
    "fileio",
    "files",
    "distributed",
    "viz",
    "cacti",
    "datasets",
    "hardware",
    "recon",
    "caption",
    "compare",
    "cli",
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(target module, imported name or '', line) of every snapcap import in the file, functions included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.split(".")[0] == "snapcap"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "snapcap":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in modules:
                    found.append((full, "", node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "snapcap"


def test_no_import_circles():
    modules = _modules()
    graph = {
        name: sorted({target for target, _, _ in _imports(name, path, modules) if target in modules and target != name})
        for name, path in modules.items()
    }
    # Importing a module runs its packages' __init__ first: those edges are real too, but an
    # __init__ that re-exports its own submodules is not a circle through them.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    assert not circles, f"import circles: {circles}"


def test_no_private_names_across_modules():
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        for target, imported, line in _imports(name, path, modules):
            if imported.startswith("_") and not imported.startswith("__") and target != name:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}.{imported}")
    assert not offenders, "\n".join(offenders)


def test_layers_run_one_way():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        source = _layer(name)
        if source not in LAYERS:
            continue
        for target, _, line in _imports(name, path, modules):
            destination = _layer(target)
            if destination in LAYERS and LAYERS.index(destination) > LAYERS.index(source):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({source}) imports {target} ({destination})")
    assert not upward, "\n".join(upward)


def test_every_module_belongs_to_a_layer():
    unknown = sorted({_layer(name) for name in _modules()} - set(LAYERS) - {"snapcap", "__main__"})
    assert not unknown, f"modules outside the layers of DESIGN.md: {unknown}; add them to LAYERS and the docs"


# --- registries reach every command -------------------------------------------------------------


def _help(argv: list[str], capsys) -> str:
    from snapcap.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


def test_a_new_mask_kind_appears_in_every_command(monkeypatch, capsys):
    from snapcap.cacti import masks

    monkeypatch.setitem(masks.MASK_KINDS, "zebra-test", masks.MASK_KINDS["random"])
    for argv in (["simulate"], ["dataset", "make"], ["train", "recon"], ["train", "teacher"], ["train", "snapcap"], ["compare"]):
        assert "zebra-test" in _help(argv, capsys), argv


def test_a_new_corpus_appears_in_every_command(monkeypatch, capsys):
    from snapcap.datasets import corpora

    monkeypatch.setitem(corpora.CORPORA, "zebra-corpus", corpora.CORPORA["folder"])
    for argv in (["dataset", "make"], ["train", "recon"], ["train", "teacher"], ["train", "baseline"], ["compare"]):
        assert "zebra-corpus" in _help(argv, capsys), argv


def test_a_new_reconstruction_method_appears_in_every_command(monkeypatch, capsys):
    from snapcap.recon import api

    monkeypatch.setitem(api.METHODS, "zebra-recon", api.METHODS["gap-tv"])
    for argv in (["reconstruct"], ["caption"], ["eval"], ["compare"]):
        assert "zebra-recon" in _help(argv, capsys), argv


def test_a_new_captioner_appears_in_every_command(monkeypatch, capsys):
    from snapcap.caption import registry

    entry = registry.captioner_entry("clip4caption")
    monkeypatch.setitem(registry.CAPTIONERS, "zebra-captioner", dataclasses.replace(entry, name="zebra-captioner"))
    assert "zebra-captioner" in _help(["train"], capsys)
    assert "zebra-captioner" in _help(["train", "zebra-captioner"], capsys)
    for argv in (["eval"], ["caption"], ["compare"]):
        assert "zebra-captioner" in _help(argv, capsys), argv


# --- the README's commands ----------------------------------------------------------------------


def _readme_commands() -> list[list[str]]:
    commands = []
    in_block = False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        line = line.split(" #", 1)[0].strip()
        if in_block and line.startswith("snapcap ") and "..." not in line:
            commands.append(shlex.split(line)[1:])
    return commands


def test_readme_commands_parse():
    """Every ``snapcap ...`` line of the README is a valid command line (flags, choices, values)."""
    from snapcap.cli.main import build_parser

    commands = _readme_commands()
    assert len(commands) > 20
    for argv in commands:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse reports the error on stderr
            pytest.fail(f"README command does not parse: snapcap {' '.join(argv)} (exit {exc.code})")
        assert callable(args.func)


# README commands that run offline on the shared data, exactly as written (the data folder substituted).
README_RUNS = [
    "snapcap simulate ../shared/data/gray_benchmark/drop40_cacti.mat --stored-mask -o drop.npz",
    "snapcap reconstruct ../shared/data/gray_benchmark/drop40_cacti.mat --snapshots 0 --method gap-tv -o out/",
    "snapcap capture info ../shared/data/real_qiao2020/cr10/meas_duomino_cr_10.mat",
    "snapcap doctor",
]


@pytest.mark.parametrize("line", README_RUNS)
def test_readme_commands_run(line, tmp_path, monkeypatch):
    from helpers import DATA, data_path

    from snapcap.cli.main import main

    assert line in README.read_text(), f"README no longer shows: {line}"
    argv = shlex.split(line)[1:]
    for token in argv:
        if token.startswith("../shared/data/"):
            data_path(token[len("../shared/data/") :])  # skip (or fail under CI) without the shared data
    monkeypatch.chdir(tmp_path)
    assert main([token.replace("../shared/data", str(DATA)) for token in argv]) == 0
