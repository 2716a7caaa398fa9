"""Many processes under torchrun (gloo on the CPU): training splits each batch and ends where one
process ends; compare shards its test videos, gathers them on rank 0, and shares its cache with
one-process runs in both directions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snapcap.compare import compare_preset, run_compare
from snapcap.distributed import DistributedContext, distributed_context, process_device

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fit.py"


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _torchrun(*args: str, processes: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _compare(out: Path, *extra: str) -> list[str]:
    return ["-m", "snapcap", "compare", "--preset", "micro", "--B", "4", "-o", str(out), "--no-progress", "--quiet", *extra]


def _rows(out: Path) -> dict[str, dict]:
    return {row["pipeline"]: row for row in json.loads((out / "results.json").read_text())["rows"]}


def test_alone_the_context_is_one_process_and_its_collectives_pass_values_through():
    context = distributed_context("cpu")
    assert context == DistributedContext() and context.main and not context.active
    assert context.broadcast({"a": 1}) == {"a": 1}
    assert context.gather(3) == [3]
    assert list(context.shard(5)) == [0, 1, 2, 3, 4]
    context.barrier()
    two = DistributedContext(rank=1, world=2, active=True)
    assert list(two.shard(5)) == [1, 3] and not two.main


def test_cuda_is_each_process_s_own_gpu(monkeypatch):
    """Under torchrun ``cuda`` is ``cuda:LOCAL_RANK`` and a process makes it its current device
    before joining the group (NCCL's collectives run there); alone, devices stay as named."""
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert process_device("cuda") == "cuda" and process_device("cpu") == "cpu"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert process_device("cuda") == "cuda:3"
    assert process_device("cuda:1") == "cuda:1" and process_device("cpu") == "cpu"
    chosen: list = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda *a, **k: chosen.append(a[0]))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setenv("WORLD_SIZE", "4")
    context = distributed_context("cuda")
    assert chosen == [torch.device("cuda:3"), "nccl"] and context.rank == 3 and context.world == 4
    chosen.clear()
    distributed_context("cpu")
    assert chosen == ["gloo"]


def test_two_processes_train_to_the_weights_of_one(tmp_path):
    # 21 samples in batches of 8, 8, 5: the last batch splits 3 + 2, so each rank's mean must be
    # weighted by its share for the averaged gradient to be the whole batch's
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "one" / "w.pt")], env=_env(), check=True, timeout=120)
    _torchrun(str(SCRIPT), str(tmp_path / "two" / "w.pt"))
    one, two = torch.load(tmp_path / "one" / "w.pt"), torch.load(tmp_path / "two" / "w.pt")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The micro comparison at B = 4 run by one process."""
    out = tmp_path_factory.mktemp("alone") / "out"
    results = run_compare(compare_preset("micro", B=(4,)), out, progress=False, quiet=True)
    return {"out": out, "results": results}


def test_two_processes_caption_the_same_rows_from_the_same_models(alone, tmp_path):
    """Evaluation sharded over two ranks and gathered on rank 0 gives one process's rows: the
    same captions in the same order, scores and PSNR; the datasets and models that one process
    trained are reused (the cache keys do not depend on the number of processes)."""
    out = tmp_path / "two"
    shutil.copytree(alone["out"] / "cache" / "data", out / "cache" / "data")
    shutil.copytree(alone["out"] / "cache" / "models", out / "cache" / "models")
    _torchrun(*_compare(out))
    results = json.loads((out / "results.json").read_text())
    assert all(stage["status"] == "reused" for stage in results["stages"] if not stage["stage"].startswith("row "))
    one, two = {row["pipeline"]: row for row in alone["results"]["rows"]}, _rows(out)
    assert list(two) == list(one)
    for pipeline, row in one.items():
        assert list(two[pipeline]["predictions"].items()) == list(row["predictions"].items())
        assert two[pipeline]["scores"] == row["scores"]
        assert two[pipeline]["psnr"] == row["psnr"] and two[pipeline]["ssim"] == row["ssim"]
        assert two[pipeline]["processes"] == 2 and row["processes"] == 1
        assert two[pipeline]["per_video_cider"] == row["per_video_cider"]


def test_two_processes_train_everything_and_one_process_reuses_their_cache(alone, tmp_path):
    out = tmp_path / "two"
    _torchrun(*_compare(out, "--recon", "gap-tv", "unfold"))
    rows = _rows(out)
    assert list(rows) == ["teacher", "snapcap", "baseline", "two-stage:gap-tv", "two-stage:unfold"]
    assert all(row["videos"] == alone["results"]["rows"][0]["videos"] for row in rows.values())
    assert rows["two-stage:gap-tv"]["psnr"] == _rows(alone["out"])["two-stage:gap-tv"]["psnr"]  # no training in it
    assert not list((out / "cache").rglob("*.ckpt")) and not list((out / "cache").rglob("checkpoint.pt"))
    # the same models and rows, read back by one process
    again = run_compare(compare_preset("micro", B=(4,), recon=("gap-tv", "unfold")), out, progress=False, quiet=True)
    assert {stage["status"] for stage in again["stages"]} == {"reused"}
    assert {row["pipeline"]: row["predictions"] for row in again["rows"]} == {p: r["predictions"] for p, r in rows.items()}


def test_zoo_features_are_written_once_by_rank_zero_and_shared(tmp_path):
    """CLIP4Caption with a frozen tower under two processes: rank 0 computes the frame-feature
    cache, both ranks train on it, and it equals (and is reused by) a one-process run's."""
    import numpy as np

    args = ["-m", "snapcap", "train", "clip4caption", "--corpus", "synthetic", "--num-videos", "8", "--B", "2"]
    args += ["--T", "2", "--size", "32", "--freeze-clip", "--epochs", "1", "--batch-size", "4", "--no-progress"]
    _torchrun(*args, "-o", str(tmp_path / "two"))
    alone = subprocess.run([sys.executable, *args, "-o", str(tmp_path / "one")], env=_env(), capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr[-2000:]
    cache = {name: tmp_path / name / "clip4caption.features" for name in ("two", "one")}
    assert sorted(p.name for p in cache["two"].iterdir()) == ["features.npy", "meta.json"]
    assert not list((tmp_path / "two").glob("*.partial"))
    np.testing.assert_array_equal(np.load(cache["two"] / "features.npy"), np.load(cache["one"] / "features.npy"))
    assert (cache["two"] / "meta.json").read_text() == (cache["one"] / "meta.json").read_text()
    stamp = (cache["two"] / "features.npy").stat().st_mtime_ns
    again = subprocess.run([sys.executable, *args, "-o", str(tmp_path / "two")], env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (cache["two"] / "features.npy").stat().st_mtime_ns == stamp  # one process reused the two-process cache
