"""CLIP4Caption's consensus ensemble (Tang et al., ACM MM 2021, Sec. 2.3) of any captioners.

For the captions T_1..T_n of one video by n models, the score of T_i is
metric(references = the other n−1 captions, hypothesis = T_i); the caption with the highest score
wins (ties: the earliest model). The metric is CIDEr-D (``cider``, the default) or sentence-level
BLEU-4 (``bleu4``) of :func:`snapcap.caption.metrics.caption_metrics` (pycocoevalcap, snapcap's
regex tokenizer, scores in percent). The captions of all the videos given are scored in one call;
CIDEr-D's document frequencies count the candidate captions of all of them (see
:func:`consensus_scores`), so a single video is scored as meaningfully as a batch.

``ensemble:<a>+<b>+...[@metric]`` names an :class:`EnsembleCaptioner` of registry names or
checkpoint files: :func:`snapcap.caption.registry.create_captioner` (and ``snapcap
eval/caption --model``) hand such names to :func:`create_ensemble`, the handler of the
``ensemble:`` prefix registered in :mod:`snapcap.caption.zoo`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from snapcap.caption.metrics import caption_metrics
from snapcap.caption.registry import Captioner, create_captioner, is_captioner_name, list_captioners, load_captioner
from snapcap.errors import ConfigError, InvalidValueError

__all__ = [
    "ENSEMBLE_METRICS",
    "consensus_scores",
    "ensemble_select",
    "EnsembleCaptioner",
    "parse_ensemble",
    "create_ensemble",
]

ENSEMBLE_METRICS = ("cider", "bleu4")
"""Consensus metrics of :func:`ensemble_select`."""

_SCORES = {"cider": ("CIDEr", "CIDEr"), "bleu4": ("BLEU", "BLEU-4")}
"""Ensemble metric -> (the :func:`caption_metrics` metric, the per-video score used)."""


def _check_metric(metric: str) -> None:
    if metric not in ENSEMBLE_METRICS:
        raise ConfigError(f"unknown ensemble metric {metric!r}; expected one of {', '.join(ENSEMBLE_METRICS)}")


def _consensus(candidates_per_video: Sequence[Sequence[str]], metric: str) -> list[list[float]]:
    """Per video, the score of each candidate against the video's other candidates (one metric call).

    ``bleu4``: the candidate's sentence BLEU-4 with the other candidates as its references.
    ``cider``: the mean of the candidate's CIDEr-D against each other candidate alone, every
    (candidate, other) pair of every video scored in one call, so that CIDEr-D's document
    frequencies count candidate captions: an n-gram every candidate shares weighs nothing, one
    few share weighs more. (With the other candidates as one reference set instead, every
    n-gram two candidates of a single video share would be in every reference set, weigh
    nothing, and all scores of a single video would be 0.)
    """
    _check_metric(metric)
    predictions: dict[tuple[int, ...], str] = {}
    references: dict[tuple[int, ...], list[str]] = {}
    for video, candidates in enumerate(candidates_per_video):
        if isinstance(candidates, str) or len(candidates) < 2:
            count = 1 if isinstance(candidates, str) else len(candidates)
            raise InvalidValueError(f"an ensemble needs at least 2 captions per video, got {count} for video {video}")
        for index, caption in enumerate(candidates):
            others = {position: str(other) for position, other in enumerate(candidates) if position != index}
            if metric == "cider":
                for position, other in others.items():
                    if other.strip():  # a blank reference scores 0 (and caption_metrics refuses it)
                        predictions[(video, index, position)] = str(caption)
                        references[(video, index, position)] = [other]
            elif any(other.strip() for other in others.values()):
                predictions[(video, index)] = str(caption)
                references[(video, index)] = list(others.values())
    scores = [[0.0] * len(candidates) for candidates in candidates_per_video]
    if predictions:
        name, score = _SCORES[metric]
        report = caption_metrics(predictions, references, metrics=(name,), tokenizer="regex")
        for key, values in report.per_video.items():
            video, index = key[0], key[1]
            share = 1.0 if metric == "bleu4" else 1.0 / (len(candidates_per_video[video]) - 1)
            scores[video][index] += share * float(values[score])
    return scores


def consensus_scores(candidates: Sequence[str], metric: str = "cider") -> list[float]:
    """S_i = metric(references = the other captions, hypothesis = candidates[i]), in percent.

    ``bleu4``: sentence BLEU-4 of ``candidates[i]`` with the other captions as references.
    ``cider``: the mean over the other captions c_j of CIDEr-D(``candidates[i]``, [c_j]), with
    document frequencies that count the candidate captions (an n-gram in every candidate weighs
    nothing).

    Args:
        candidates: the n >= 2 captions of one video (the document frequencies then come from
            this video alone).
        metric: ``cider`` or ``bleu4`` (:data:`ENSEMBLE_METRICS`).

    Raises:
        ConfigError: unknown metric.
        InvalidValueError: fewer than 2 candidates.
    """
    return _consensus([list(candidates)], metric)[0]


def ensemble_select(candidates_per_video: Sequence[Sequence[str]], metric: str = "cider") -> list[int]:
    """CLIP4Caption's ensemble: for each video, the index of the caption with the best consensus score.

    Args:
        candidates_per_video: per video, the captions of the n models (same order for every video).
        metric: ``cider`` (CIDEr-D; document frequencies over the candidates of every video, see
            :func:`consensus_scores`) or ``bleu4``.

    Returns:
        One index per video into its candidates (ties: the earliest).

    Raises:
        ConfigError: unknown metric.
        InvalidValueError: a video with fewer than 2 candidates.
    """
    _check_metric(metric)
    if not candidates_per_video:
        return []
    out = []
    for scores in _consensus(candidates_per_video, metric):
        out.append(int(max(range(len(scores)), key=lambda i: (scores[i], -i))))
    return out


class EnsembleCaptioner(Captioner):
    """Captions of several captioners, one chosen per video by consensus (:func:`ensemble_select`).

    ``kind`` is ``"frames"`` when any member captions frames (the input must then hold them).
    After each call, ``last_candidates`` holds every member's captions and ``last_choice``
    the chosen member per video.
    """

    def __init__(self, name: str, members: Sequence[Any], metric: str = "cider"):
        if len(members) < 2:
            raise ConfigError(f"{name}: an ensemble needs at least 2 members, got {len(members)}")
        if metric not in ENSEMBLE_METRICS:
            raise ConfigError(f"{name}: unknown ensemble metric {metric!r}; expected one of {', '.join(ENSEMBLE_METRICS)}")
        first = members[0]
        kind = "frames" if any(m.kind == "frames" for m in members) else "snapshot"
        super().__init__(name, None, first.config, first.vocab, checkpoint=first.checkpoint, device=first.device, kind=kind)
        self.members = list(members)
        self.metric = metric
        self.last_candidates: list[list[str]] = []
        self.last_choice: list[int] = []

    @property
    def image_size(self) -> int:
        return int(self.members[0].image_size)

    @property
    def needs_fixed_size(self) -> bool:
        return any(m.needs_fixed_size for m in self.members)

    @property
    def two_stage(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"EnsembleCaptioner({self.name!r}, members={[m.name for m in self.members]}, metric={self.metric!r})"

    def caption(self, sample_or_batch: Any, beam_size: int = 1, method: str | None = None, **generate: Any) -> list[str]:
        start = time.perf_counter()
        per_member = [m.caption(sample_or_batch, beam_size=beam_size, method=method, **generate) for m in self.members]
        recon = sum(m.timings.get("recon", 0.0) for m in self.members)
        candidates = [list(row) for row in zip(*per_member)]
        choice = ensemble_select(candidates, self.metric)
        self.last_candidates, self.last_choice = candidates, choice
        total = time.perf_counter() - start
        self.timings = {"total": total, "recon": recon, "caption": max(0.0, total - recon)}
        return [row[i] for row, i in zip(candidates, choice)]

    caption_batch = caption


def parse_ensemble(name: str) -> tuple[list[str], str]:
    """``ensemble:a+b+c[@metric]`` -> (members, metric)."""
    if not name.startswith("ensemble:"):
        raise ConfigError(f"{name!r} is not an ensemble name (ensemble:<a>+<b>+...[@metric])")
    body = name[len("ensemble:") :]
    metric = "cider"
    if "@" in body:
        body, metric = body.rsplit("@", 1)
        metric = metric.strip().lower().replace("-", "")
    members = [m.strip() for m in body.split("+") if m.strip()]
    if len(members) < 2:
        raise ConfigError(f"{name!r}: an ensemble needs at least 2 members, e.g. ensemble:clip4caption+clip4videocap")
    if metric not in ENSEMBLE_METRICS:
        raise ConfigError(f"{name!r}: unknown ensemble metric {metric!r}; expected one of {', '.join(ENSEMBLE_METRICS)}")
    return members, metric


def create_ensemble(name: str, checkpoints: Any = None, recon_params: Any = None, device: str = "cpu"):
    """An :class:`EnsembleCaptioner` from ``ensemble:<a>+<b>+...[@metric]``.

    Members are registry names (their weights found in ``checkpoints`` as
    :func:`~snapcap.caption.registry.create_captioner` finds them) or checkpoint files.
    """
    members, metric = parse_ensemble(name)
    built = []
    for member in members:
        if member.startswith("ensemble:"):
            raise ConfigError(f"{name!r}: ensembles do not nest")
        if is_captioner_name(member):
            if checkpoints is None:
                raise ConfigError(
                    f"{name!r}: member {member!r} is a captioner name and needs the training folder (--checkpoints DIR)"
                )
            params = recon_params if member.startswith("two-stage:") else None
            built.append(create_captioner(member, checkpoints, recon_params=params, device=device))
        elif Path(member).suffix in (".pt", ".pth") or Path(member).exists():
            built.append(load_captioner(member, device=device))
        else:
            raise ConfigError(
                f"{name!r}: member {member!r} is neither a captioner name ({', '.join(list_captioners())}) nor a checkpoint file"
            )
    trained_for = {m.T for m in built}
    if len(trained_for) > 1:
        raise ConfigError(
            f"{name!r}: the members were trained for different T ({sorted(trained_for)}); they caption the same videos"
        )
    return EnsembleCaptioner(name, built, metric)
