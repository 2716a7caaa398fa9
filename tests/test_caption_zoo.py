"""The captioner registry as a plug-in point: registration, the train verb, loading, eval and caption of a plug-in model.

A tiny "nearest video" captioner (it memorises each training video's mean colour and first
caption) stands in for a real model, so these tests check the plumbing in a second or two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from caption_helpers import run_cli  # noqa: E402

from snapcap.caption import registry, zoo  # noqa: E402
from snapcap.caption.registry import (  # noqa: E402
    Captioner,
    checkpoint_file,
    create_captioner,
    is_captioner_name,
    list_captioners,
    load_captioner,
)
from snapcap.errors import ConfigError, DataFileError, SnapcapError  # noqa: E402

FAST_METRICS = "BLEU,ROUGE-L,CIDEr"


@dataclass(frozen=True)
class NearestConfig:
    B: int
    T: int

    def to_dict(self):
        return asdict(self)


class NearestVideo:
    """caption(frames (N, T, B, H, W, 3)) -> the ids of the training caption of the closest mean colour."""

    image_size = 32

    def __init__(self, colours: torch.Tensor, captions: list[list[int]]):
        self.colours, self.captions = colours, captions

    def caption(self, frames, **generate):
        assert generate.get("method") in ("greedy", "beam")
        colours = frames.flatten(1, -2).mean(dim=1)
        nearest = torch.cdist(colours, self.colours).argmin(dim=1)
        return [list(self.captions[int(i)]) for i in nearest]


def nearest_train(samples, out_dir, options, progress):
    from snapcap.caption.train import build_vocabulary

    assert isinstance(options["epochs"] if "epochs" in options else 1, (int, type(None)))
    rows = [samples[i] for i in range(len(samples))]
    vocab = build_vocabulary(rows, int(zoo.option(options, "min_count", 1)))
    colours = torch.stack([torch.as_tensor(s["frames"]).float().flatten(0, -2).mean(dim=0) for s in rows])
    captions = [vocab.encode(s["captions"][0])[1:-1] for s in rows]
    config = NearestConfig(B=int(rows[0]["masks"].shape[-3]), T=int(rows[0]["meas"].shape[-3]))
    payload = {
        "config": config.to_dict(),
        "vocab": vocab.to_dict(),
        "colours": colours,
        "captions": captions,
        "flag": zoo.option(options, "flag", "none"),
    }
    return zoo.save_checkpoint(Path(out_dir) / "nearest.pt", "nearest", payload)


def nearest_load(path, device):
    from snapcap.caption.text import Vocabulary

    state = zoo.read_checkpoint(path, "nearest")
    return (
        NearestVideo(state["colours"], state["captions"]),
        NearestConfig(**state["config"]),
        Vocabulary.from_dict(state["vocab"]),
    )


def nearest_arguments(group):
    group.add_argument("--flag", default="none", help="a model option that must reach train()")


@pytest.fixture(scope="module")
def registered():
    spec = registry.register(
        registry.CaptionerEntry(
            name="nearest",
            kind="frames",
            help="test model",
            train=nearest_train,
            load=nearest_load,
            add_arguments=nearest_arguments,
            defaults={"B": 2, "T": 2, "size": 32},
        ),
        replace=True,
    )
    yield spec
    registry.CAPTIONERS.pop("nearest", None)


def make_h5(path: Path, count: int = 6, B: int = 2, T: int = 2, size: int = 32) -> Path:
    from snapcap.datasets.h5 import DatasetConfig, make_dataset
    from snapcap.datasets.synthetic import SyntheticCorpus

    make_dataset(
        SyntheticCorpus(count, seed=0),
        path,
        DatasetConfig(B=B, T=T, size=(size, size), compression="gzip"),
        progress=False,
        workers=1,
    )
    return path


def test_builtin_models_are_registered_on_import():
    names = registry.zoo_names()
    assert "clip4caption" in names and "clip4videocap" in names
    for name in ("clip4caption", "clip4videocap"):
        assert name in list_captioners()
        spec = registry.captioner_entry(name)
        assert spec.kind == "frames" and callable(spec.train_fn()) and callable(spec.load_fn())
    assert is_captioner_name("ensemble:clip4caption+teacher") and not is_captioner_name("nope")


def test_name_prefixes_reach_their_handler():
    assert "ensemble:" in registry.prefixes()
    calls = []

    def handler(name, checkpoints, recon_params=None, device="cpu"):
        calls.append((name, checkpoints, recon_params, device))
        return "built"

    registry.register_prefix("mine:", handler)
    try:
        assert is_captioner_name("mine:anything") and not is_captioner_name("yours:anything")
        assert create_captioner("mine:x", "folder") == "built"
        assert calls == [("mine:x", "folder", None, "cpu")]
        with pytest.raises(ConfigError, match="already registered"):
            registry.register_prefix("mine:", handler)
        with pytest.raises(ConfigError, match="followed by ':'"):
            registry.register_prefix("mine", handler)
    finally:
        registry.PREFIXES.pop("mine:", None)


def test_ensemble_names_work_when_only_the_package_is_imported():
    """The registry imports no ensemble module: the zoo registers the ``ensemble:`` handler by name."""
    code = (
        "import sys\n"
        "import snapcap.caption as caption\n"
        "assert 'snapcap.caption.zoo.ensemble' not in sys.modules\n"
        "try:\n"
        "    caption.create_captioner('ensemble:nope+other', 'folder')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ConfigError") and "neither a captioner name" in out, out


def test_register_rejects_bad_specs(registered):
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(registered)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(registry.CaptionerEntry(name="teacher", kind="frames", help="", train=nearest_train, load=nearest_load))
    with pytest.raises(ConfigError, match="reserved"):
        registry.register(registry.CaptionerEntry(name="recon", kind="frames", help="", train=nearest_train, load=nearest_load))
    with pytest.raises(ConfigError, match="kind"):
        registry.CaptionerEntry(name="x", kind="pixels", help="", train=nearest_train, load=nearest_load)
    with pytest.raises(ConfigError, match="name"):
        registry.CaptionerEntry(name="a+b", kind="frames", help="", train=nearest_train, load=nearest_load)
    with pytest.raises(ConfigError, match="unknown captioner 'nope'"):
        registry.captioner_entry("nope")
    broken = registry.CaptionerEntry(
        name="broken", kind="frames", help="", train="snapcap.caption.no_such_module:train", load=nearest_load
    )
    with pytest.raises(ConfigError, match="no_such_module"):
        broken.train_fn()


def test_train_verb_eval_and_caption(registered, tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(["train", "nearest", "--num-videos", "6", "--split", "all", "--flag", "on", "--no-progress", "--out", run])
    path = run / "nearest.pt"
    assert path.is_file() and (run / "nearest.data.json").is_file() and (run / "nearest.masks.npy").is_file()
    assert json.loads((run / "nearest.data.json").read_text())["B"] == 2
    assert zoo.checkpoint_name(path) == "nearest"
    assert torch.load(path, weights_only=False)["flag"] == "on"
    assert checkpoint_file("nearest", run) == path

    captioner = load_captioner(path)
    assert isinstance(captioner, Captioner) and captioner.kind == "frames" and captioner.name == "nearest"
    assert captioner.image_size == 32 and not captioner.needs_fixed_size and (captioner.B, captioner.T) == (2, 2)
    with pytest.raises(ConfigError, match="holds the 'nearest' captioner"):
        load_captioner(path, name="clip4caption")

    data = make_h5(tmp_path / "data.h5")
    text = run_cli(
        [
            "eval",
            "--data",
            data,
            "--split",
            "all",
            "--model",
            "nearest",
            "--checkpoints",
            run,
            "--metrics",
            FAST_METRICS,
            "--tokenizer",
            "regex",
            "-o",
            tmp_path / "eval",
        ],
        capsys,
    )
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert rows[0]["model"] == "nearest" and "nearest" in text
    assert rows[0]["CIDEr"] > 1.0  # the training videos are the eval videos: memorised
    out = run_cli(["caption", data, "--model", path, "--samples", "0:2", "--json"], capsys)
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert len(records) == 2 and all(r["model"] == "nearest" and r["caption"] for r in records)


def test_missing_checkpoint_names_the_train_command(registered, tmp_path):
    with pytest.raises(DataFileError, match="snapcap train nearest --out"):
        create_captioner("nearest", tmp_path)


def test_foreign_file_is_a_data_file_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SnapcapError):
        zoo.checkpoint_name(bad)
    torch.save({"kind": "something"}, tmp_path / "other.pt")
    assert zoo.checkpoint_name(tmp_path / "other.pt") is None
    with pytest.raises(DataFileError, match="not a zoo captioner"):
        zoo.read_checkpoint(tmp_path / "other.pt", "nearest")


def test_option_helper():
    assert zoo.option({"a": None}, "a", 3) == 3 and zoo.option({"a": 0}, "a", 3) == 0 and zoo.option(None, "a", 1) == 1
    assert np.isfinite(1.0)


# --- docs/paper-presets.md ----------------------------------------------------------------------


def _doc_section(title: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "paper-presets.md").read_text(encoding="utf-8")
    sections = {part.split("\n", 1)[0].strip(): part for part in text.split("\n## ")[1:]}
    matches = [body for heading, body in sections.items() if heading.startswith(title)]
    assert len(matches) == 1, f"docs/paper-presets.md has no single section {title!r}: {list(sections)}"
    return matches[0]


def test_paper_presets_doc_lists_every_setting():
    """Each zoo captioner's section names every field of its paper preset and training settings."""
    from dataclasses import fields

    from snapcap.caption.zoo import clip4caption, clip4videocap, vccv

    cases = {
        "CLIP4Caption": [f.name for f in fields(clip4caption.Clip4CaptionConfig)] + list(clip4caption.TRAIN_DEFAULTS["paper"]),
        "CLIP4VideoCap": [f.name for f in fields(clip4videocap.Clip4VideoCapConfig)]
        + list(clip4videocap.TRAIN_DEFAULTS["paper"]),
        "VCCV": [f.name for f in fields(vccv.VccvConfig)] + [f.name for f in fields(vccv.VccvTrainConfig)],
    }
    for title, names in cases.items():
        section = _doc_section(title)
        missing = [name for name in names if f"`{name}`" not in section]
        assert not missing, f"docs/paper-presets.md, {title}: no row for {missing}"
        assert "| setting | snapcap paper preset | the paper's value | source | note |" in section
    snapcap = _doc_section("SnapCap")
    for name in ("alpha", "beta", "lr_conv2", "lr_tail", "lr_proj", "lr_encoder", "warmup_epochs", "stage1_epochs", "batch_size"):
        assert f"`{name}`" in snapcap, name
    assert "docs/paper-presets.md" in (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_paper_presets_doc_states_the_corrected_values():
    section = _doc_section("CLIP4VideoCap")
    row = next(line for line in section.splitlines() if line.startswith("| `distill_weight`"))
    assert row.split("|")[2].strip() == "10" and "Table 3" in row
    vccv_rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in _doc_section("VCCV").splitlines()
        if line.startswith("| `")
    }
    assert (vccv_rows["`lr`"], vccv_rows["`batch_size`"], vccv_rows["`warmup_epochs`"]) == ("1e-4", "8", "0")
