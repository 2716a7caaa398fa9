"""What ``snapcap compare`` runs: :class:`CompareConfig`, its presets and the content hashes.

Every artefact of a comparison (simulated dataset, teacher tower, teacher adapted to a B, each
student, each deep reconstructor, each evaluated row) is stored under a key that is the hash of
everything that determines it, including the keys of what it was made from. A rerun with the
same settings reuses everything; one more B, another noise or another reconstructor only does
the new work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from snapcap.caption.registry import captioner_entry, zoo_names
from snapcap.caption.train import CaptionTrainConfig
from snapcap.errors import ConfigError
from snapcap.recon.api import GAP_TV_FAST, METHODS

__all__ = [
    "CompareConfig",
    "COMPARE_PRESETS",
    "compare_preset",
    "content_hash",
    "STUDENT_PIPELINES",
    "TEMPORAL_STUDENTS",
    "CAMERAS",
    "camera_of",
]

STUDENT_PIPELINES = ("snapcap", "baseline", "snapcap-temporal", "baseline-temporal")
"""One-stage students a comparison can train: ``snapcap`` and the caption-loss-only baseline, and
their order-aware versions (:mod:`snapcap.caption.temporal`: students of an order-aware teacher)."""

TEMPORAL_STUDENTS = ("snapcap-temporal", "baseline-temporal")
"""The students that need the order-aware teacher (row ``teacher-temporal``)."""

CAMERAS = {"long-exposure": "long-exposure", "single-frame": "single-frame"}
"""Camera controls -> their mask kind (:data:`snapcap.cacti.masks.MASK_KINDS`): the same sensor
and B with every mask all ones (the plain sum of the frames) or one uncoded frame per snapshot
time. Their students train with the coded camera's recipe and budget, at the reference B."""


def camera_of(pipeline: str) -> str:
    """The camera of a row: ``coded``, or the control after ``@`` (``snapcap@long-exposure``)."""
    return pipeline.split("@", 1)[1] if "@" in pipeline else "coded"


def content_hash(*parts: Any, length: int = 16) -> str:
    """A short stable hash of JSON-able parts (dict keys sorted)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# The procedural corpus of the tiny preset: one object per video (its captions then tell one
# object's facts, as the demo's question is what each pipeline keeps of them), 456 training
# videos and 144 test videos. Test videos cost no training, only captioning; 32 of them left
# CIDEr uncertain by about ±10, more than any difference across B. The scenes are the same at
# every B (each is stretched over T·B frames). Every odd video is the one before it played backwards
# (``temporal_pairs``: the same long exposure, the opposite direction, spin, growth and order of
# events), in training and test alike: nothing rewards reading the order of the frames otherwise,
# and the test pairs show whether a caption follows it.
_TINY_CORPUS = {
    "kind": "synthetic",
    "num_videos": 600,
    "seed": 0,
    "splits": (0.76, 0.0, 0.24),
    "max_objects": 1,
    "temporal_pairs": True,
}


@dataclass(frozen=True)
class CompareConfig:
    """One comparison of captioning pipelines across compression ratios.

    Attributes:
        preset: the preset this came from (``tiny``, ``micro``, ``paper``): recorded only.
        B: the compression ratios (frames per snapshot), each a separate simulated dataset.
        corpus: corpus spec: ``kind`` (``synthetic``, ``msrvtt``, ``msvd``, ``folder``) and its
            arguments (``num_videos``, ``seed`` for synthetic; ``root``, ``annotations``,
            ``captions``, ``mapping`` for files).
        T: snapshots per video; size: frame size (square; the teacher's input size).
        gray / bayer / mask / mask_seed / noise / noise_seed: the camera (see
            :class:`snapcap.datasets.h5.DatasetConfig`).
        captioner: a captioner preset (:mod:`snapcap.caption.presets`, the files in
            ``snapcap/caption/presets/``): ``tiny`` (the tiny tower with its shipped procedural
            pretraining, frozen, a decoder trained here and the tuned CPU recipe), ``small``,
            ``paper`` (ViT-B/16 with OpenAI weights, GPT-2 medium), ``paper-smoke``. Its
            architecture and training recipe are those of ``snapcap train teacher --preset``.
        decoder: the caption decoder, ``native`` or ``lm:<name-or-path>`` (a frozen pretrained
            language model, :mod:`snapcap.caption.lm`); None: the captioner preset's.
        training: :class:`snapcap.caption.train.CaptionTrainConfig` fields, over the captioner
            preset's recipe (:func:`snapcap.caption.presets.training_preset`): what this
            comparison changes, not the preset's own settings.
        adapt_epochs: epochs of projector + decoder when the teacher tower, trained once at
            ``base_B``, is carried to a B (every B, ``base_B`` included).
        base_B: the B the teacher tower trains at (default 8, the paper's, listed or not: a
            fixed choice, so that adding a B to a comparison reuses the tower).
        students: one-stage pipelines (``snapcap``, ``baseline``; ``snapcap-temporal`` and
            ``baseline-temporal`` add the order-aware teacher's row ``teacher-temporal``).
        order_aware: the captioner preset of the order-aware rows (:mod:`snapcap.caption.temporal`,
            e.g. ``tiny-temporal``): given, the order-aware teacher's row ``teacher-temporal`` is
            added; None: ``<captioner>-temporal`` when a ``*-temporal`` student is listed, else no
            order-aware row. The order-aware rows run at the reference B.
        cameras: camera controls (:data:`CAMERAS`: ``long-exposure``, ``single-frame``); at the
            reference B the ``camera_students`` (None: every student) are also trained and tested
            on that camera's snapshots of the same videos (rows ``<student>@<camera>``), with the
            coded camera's recipe and budget, so the report can say what the coding buys.
        recon: two-stage reconstructors; recon_params: method -> parameter overrides.
        zoo: other captioners of :mod:`snapcap.caption.zoo` (``clip4caption``, ``clip4videocap``,
            ``vccv``), trained per B on the same data (CLIP-based ones on the teacher's tower);
            zoo_options: name -> options of its ``snapcap train NAME`` verb (``epochs``...).
        unfold: the deep reconstructor's training: ``preset`` (tiny/small/paper), ``steps``...
        test_limit: at most this many test videos (None: the whole test split).
        batch_size: test videos captioned together for the scores (1: one at a time, which is
            also the timed pass); latency_videos: with ``batch_size > 1``, the videos of the
            separate timed pass at batch 1 (None: all of them; under torchrun, as many as rank 0's
            share of the test split).
        ssim_videos: SSIM of the two-stage reconstructions over at most the first this many test
            videos (None: all); PSNR is always over all of them. SSIM costs ~2 ms a 64x64 colour
            frame, more than the GAP-TV reconstruction itself at large B.
        metrics: caption metrics; beam: decoding beam of every row (1: greedy); None: each row's
            own (:meth:`row_beam`: greedy, or its paper's beam under the paper captioner preset).
        montage_videos: test videos drawn in montages.
        device: torch device; threads: torch CPU threads (0: leave torch's default).
        seed: training seed; seeds: how many training seeds (``seed``, ``seed + 1``, ...): every
            model is trained once per seed (the simulated data is shared) and the report gives
            the mean and the spread over seeds.
    """

    preset: str = "tiny"
    B: tuple[int, ...] = (2, 4, 8, 16, 24)
    corpus: Mapping[str, Any] = field(default_factory=lambda: dict(_TINY_CORPUS))
    T: int = 4
    size: int = 64
    gray: bool = False
    bayer: str = "RGGB"
    mask: str = "random"
    mask_seed: int = 0
    noise: str = "none"
    noise_seed: int = 0
    captioner: str = "tiny"
    decoder: str | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    adapt_epochs: int = 3
    base_B: int | None = None
    students: tuple[str, ...] = ("snapcap", "baseline")
    order_aware: str | None = None
    cameras: tuple[str, ...] = ()
    camera_students: tuple[str, ...] | None = None
    recon: tuple[str, ...] = ("gap-tv",)
    zoo: tuple[str, ...] = ()
    zoo_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    recon_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    unfold: Mapping[str, Any] = field(default_factory=lambda: {"preset": "tiny", "steps": 300, "batch_size": 8, "patch": 64})
    test_limit: int | None = None
    batch_size: int = 1
    latency_videos: int | None = None
    ssim_videos: int | None = None
    metrics: tuple[str, ...] = ("BLEU", "METEOR", "ROUGE-L", "CIDEr")
    beam: int | None = None
    montage_videos: int = 3
    device: str = "cpu"
    threads: int = 0
    seed: int = 0
    seeds: int = 1

    def __post_init__(self) -> None:
        for method, params in self.recon_params.items():  # before any work: unknown names are typos
            if method not in METHODS:
                raise ConfigError(f"--recon-param {method}:...: not a reconstruction method ({', '.join(METHODS)})")
            known = {item.name for item in fields(METHODS[method].params)}
            unknown = sorted(set(params) - known)
            if unknown:
                raise ConfigError(
                    f"--recon-param {method}:{unknown[0]}=...: {method} has no parameter {unknown[0]!r}; "
                    f"it takes {', '.join(sorted(known))}"
                )
        B = tuple(int(b) for b in self.B)
        if not B or min(B) < 1:
            raise ConfigError(f"--B: compression ratios must be >= 1, got {list(self.B)}")
        if len(set(B)) != len(B):
            raise ConfigError(f"--B: a compression ratio is listed twice: {list(self.B)}")
        object.__setattr__(self, "B", tuple(sorted(B)))
        if self.T < 1:
            raise ConfigError(f"--T must be >= 1, got {self.T}")
        if self.size < 8:
            raise ConfigError(f"--size must be >= 8, got {self.size}")
        unknown = [name for name in self.students if name not in STUDENT_PIPELINES]
        if unknown:
            raise ConfigError(f"--students: unknown {unknown}; expected among {', '.join(STUDENT_PIPELINES)}")
        bad_cameras = [name for name in self.cameras if name not in CAMERAS]
        if bad_cameras:
            raise ConfigError(f"--cameras: unknown {bad_cameras}; expected among {', '.join(CAMERAS)}")
        if self.cameras and not self.students:
            raise ConfigError("--cameras: the camera controls are student rows; give --students too")
        if self.camera_students is not None:
            stray = [name for name in self.camera_students if name not in self.students]
            if stray:
                raise ConfigError(f"camera_students: {stray} are not among the students {list(self.students)}")
            object.__setattr__(self, "camera_students", tuple(self.camera_students))
        if self.temporal:
            from snapcap.caption.presets import preset_names  # the presets' files, read on demand

            if self.order_aware_preset not in preset_names():
                raise ConfigError(
                    f"the order-aware rows need an order-aware captioner preset: {self.order_aware_preset!r} is not one "
                    f"of {', '.join(preset_names())} (--order-aware PRESET)"
                )
        bad = [name for name in self.recon if name not in METHODS]
        if bad:
            raise ConfigError(f"--recon: unknown method(s) {bad}; expected among {', '.join(METHODS)}")
        if self.base_B is not None and int(self.base_B) < 1:
            raise ConfigError(f"--base-B must be >= 1, got {self.base_B}")
        if self.test_limit is not None and self.test_limit < 1:
            raise ConfigError(f"--test-limit must be >= 1, got {self.test_limit}")
        if self.batch_size < 1 or (self.latency_videos is not None and self.latency_videos < 1):
            raise ConfigError(f"--batch-size and --latency-videos must be >= 1, got {self.batch_size}, {self.latency_videos}")
        if self.ssim_videos is not None and self.ssim_videos < 1:
            raise ConfigError(f"ssim_videos must be >= 1 (or None: all), got {self.ssim_videos}")
        if self.beam is not None and self.beam < 1:
            raise ConfigError(f"--beam must be >= 1, got {self.beam}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"--seeds must be an integer >= 1, got {self.seeds!r}")
        if self.adapt_epochs < 1:
            raise ConfigError(f"adapt_epochs must be >= 1, got {self.adapt_epochs}")

        known = {f.name for f in fields(CaptionTrainConfig)}
        extra = sorted(set(self.training) - known)
        if extra:
            raise ConfigError(f"training: unknown field(s) {extra}; CaptionTrainConfig has {sorted(known)}")
        if self.zoo:
            unknown_zoo = [name for name in self.zoo if name not in zoo_names()]
            if unknown_zoo:
                raise ConfigError(f"--zoo: unknown captioner(s) {unknown_zoo}; expected among {', '.join(zoo_names())}")
        object.__setattr__(self, "zoo", tuple(self.zoo))
        object.__setattr__(self, "students", tuple(self.students))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "recon", tuple(self.recon))
        object.__setattr__(self, "metrics", tuple(self.metrics))

    # -- derived ------------------------------------------------------------------------------

    @property
    def teacher_B(self) -> int:
        """The B the teacher tower is trained at."""
        return 8 if self.base_B is None else int(self.base_B)

    @property
    def reference_B(self) -> int:
        """The B of the report's main table and of the montages (the teacher's)."""
        return self.teacher_B if self.teacher_B in self.B else self.B[len(self.B) // 2]

    @property
    def temporal(self) -> bool:
        """Whether the comparison has order-aware rows (``order_aware`` given, or a ``*-temporal`` student)."""
        return self.order_aware is not None or any(name in TEMPORAL_STUDENTS for name in self.students)

    @property
    def order_aware_preset(self) -> str:
        """The captioner preset of the order-aware teacher and students."""
        return self.order_aware or f"{self.captioner}-temporal"

    def pipelines(self) -> list[str]:
        """Row names in report order (the camera controls' rows only exist at the reference B)."""
        teachers = ["teacher", "teacher-temporal"] if self.temporal else ["teacher"]
        controlled = self.students if self.camera_students is None else self.camera_students
        controls = [f"{student}@{camera}" for camera in self.cameras for student in controlled]
        return [*teachers, *self.students, *controls, *(f"two-stage:{method}" for method in self.recon), *self.zoo]

    @property
    def zoo_preset(self) -> str:
        """The preset of the zoo rows: ``paper`` with the paper captioners, else ``tiny``."""
        return "paper" if self.captioner == "paper" else "tiny"

    def row_beam(self, pipeline: str) -> int:
        """The beam a row decodes with: ``beam`` when given; else its paper's
        (:attr:`~snapcap.caption.registry.CaptionerEntry.paper_beam`) for a zoo row under the
        paper preset, greedy otherwise."""
        if self.beam is not None:
            return int(self.beam)
        if pipeline in self.zoo and self.zoo_preset == "paper":
            return int(captioner_entry(pipeline).paper_beam)
        return 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["corpus"] = dict(self.corpus)
        data["training"] = dict(self.training)
        data["recon_params"] = {k: dict(v) for k, v in self.recon_params.items()}
        data["unfold"] = dict(self.unfold)
        data["zoo_options"] = {k: dict(v) for k, v in self.zoo_options.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompareConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("B", "students", "recon", "metrics", "zoo", "cameras", "camera_students"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def with_overrides(self, **changes: Any) -> CompareConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


COMPARE_PRESETS: dict[str, CompareConfig] = {
    # The README's main command: procedural corpus, tiny models trained here, 2-core CPU.
    "tiny": CompareConfig(
        preset="tiny",
        # B = 24 left out since the arrow-of-time rows came in (the order-aware teacher's head and the
        # long-exposure control add about 3 minutes): make demo stays within 15 minutes on 2 cores
        B=(2, 4, 8, 16),
        corpus=dict(_TINY_CORPUS),
        training={},  # the tiny preset's recipe (snapcap/caption/presets/tiny.json)
        # the arrow of time, at the reference B: the order-aware teacher's row, and SnapCap trained
        # and tested on long exposures of the same videos (the camera without coding)
        order_aware="tiny-temporal",
        cameras=("long-exposure",),
        camera_students=("snapcap",),
        # the fast TV step with a light weight: chosen for these 64 x 64 procedural frames (the
        # library default, robust across B and cameras, is stronger and slower)
        recon_params={"gap-tv": {**GAP_TV_FAST, "tv_weight": 0.03}},
        ssim_videos=32,
    ),
    # The tests: two ratios, a handful of videos, one epoch of everything, no METEOR (Java start).
    "micro": CompareConfig(
        preset="micro",
        B=(2, 4),
        base_B=4,
        corpus={"kind": "synthetic", "num_videos": 30, "seed": 0},
        T=2,
        training={"teacher_epochs": 1, "head_epochs": 1, "stage1_epochs": 1, "epochs": 1, "batch_size": 8},
        adapt_epochs=1,
        recon_params={"gap-tv": {"iterations": 5, "tv_weight": 0.03}},
        unfold={"preset": "tiny", "steps": 4, "batch_size": 2, "patch": 32},
        metrics=("BLEU", "ROUGE-L", "CIDEr"),
        montage_videos=2,
    ),
    # The paper preset's models and shapes (ViT-B/16 from random weights, 224 x 224, T = 8, B = 8,
    # decoder width D = 1024, the paper's student and deep unfolding net) on a handful of
    # procedural videos with one epoch (or two steps) of everything: every code path of a paper
    # run, in minutes on a CPU (the slow tests run it).
    "paper-smoke": CompareConfig(
        preset="paper-smoke",
        B=(8,),
        base_B=8,
        corpus={"kind": "synthetic", "num_videos": 4, "seed": 0, "splits": [0.75, 0.0, 0.25]},
        T=8,
        size=224,
        captioner="paper-smoke",
        training={},  # the paper-smoke preset's one epoch of everything (snapcap/caption/presets/paper-smoke.json)
        adapt_epochs=1,
        recon=("gap-tv", "unfold"),
        recon_params={"gap-tv": {"iterations": 5}},
        unfold={"preset": "paper", "steps": 2, "batch_size": 1, "patch": 64},
        test_limit=2,
        metrics=("BLEU", "ROUGE-L", "CIDEr"),
        montage_videos=1,
    ),
    # The SnapCap paper's configuration (MSR-VTT, frozen CLIP ViT-B/16 with OpenAI weights, T = 8,
    # 224 x 224, the paper's optimisation); for a GPU. Needs --root (and the weights in the
    # open_clip cache, or network access the first time).
    "paper": CompareConfig(
        preset="paper",
        corpus={"kind": "msrvtt"},
        T=8,
        size=224,
        captioner="paper",
        training={},
        adapt_epochs=5,
        # Table 3's two-stage rows: the pretrained networks and the two PnP methods; each needs its
        # checkpoint (--recon-param METHOD:weights=PATH). gap-tv and snapcap's unfold are extra rows.
        recon=("birnat", "pnp-ffdnet", "pnp-fastdvdnet", "stformer", "efficientsci"),
        unfold={"preset": "paper", "steps": 20000, "batch_size": 4, "patch": 128},
        device="cuda",
    ),
}
"""Named comparisons; command-line options override their fields."""


def compare_preset(name: str, **overrides: Any) -> CompareConfig:
    if name not in COMPARE_PRESETS:
        raise ConfigError(f"unknown compare preset {name!r}; expected one of {', '.join(COMPARE_PRESETS)}")
    return COMPARE_PRESETS[name].with_overrides(**overrides)
