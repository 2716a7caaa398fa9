"""Measurement dataset files: make, verify, resume after SIGKILL, shards and merge, loaders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401 - the Blosc filter of the default compression
import numpy as np
import pytest
from dataset_fixtures import TinyCorpus

from snapcap.datasets.h5 import DatasetConfig, dataset_info, make_dataset, merge_shards, open_dataset, shard_path, verify_dataset
from snapcap.errors import ConfigError, DataFileError

CONFIG = DatasetConfig(B=4, T=2, size=(24, 24), noise="poisson:photons=800+gaussian:sigma=0.01", part_size=3)


def read_all(path):
    with h5py.File(path, "r") as handle:
        return {name: handle[name][()] for name in handle}


def test_make_verify_round_trip(tmp_path):
    corpus = TinyCorpus(10, bad=("vid004",))
    report = make_dataset(corpus, tmp_path / "d.h5", CONFIG, progress=False)
    assert report.complete and report.written == 10
    assert [entry["video_id"] for entry in report.skipped] == ["vid004"]
    assert "moov atom" in report.skipped[0]["error"]
    info = dataset_info(tmp_path / "d.h5")
    assert info["num_samples"] == 9 and info["B"] == 4 and info["T"] == 2 and info["bayer"] == "RGGB"
    assert info["noise"]["kind"] == "compose" and info["skipped"][0]["video_id"] == "vid004"
    assert info["datasets"]["meas"]["shape"] == [9, 2, 24, 24]
    assert info["datasets"]["frames"]["shape"] == [9, 2, 4, 24, 24, 3]
    with h5py.File(tmp_path / "d.h5", "r") as handle:
        assert handle["meas"].fletcher32 and "32001" in handle["meas"]._filters  # Blosc (Zstd)
        assert handle["meas"].chunks == (1, 2, 24, 24)
        assert json.loads(handle["captions"][0]) == ["video 0 caption a", "video 0 caption b"]
    result = verify_dataset(tmp_path / "d.h5", samples=3)
    assert result.ok, result.summary()
    assert len(result.resimulated) >= 3
    assert not (tmp_path / "d.h5.parts").exists()
    # A rerun of the finished file does nothing.
    again = make_dataset(corpus, tmp_path / "d.h5", CONFIG, progress=False)
    assert again.written == 0 and again.reused == 9


def test_verify_catches_a_tampered_measurement(tmp_path):
    make_dataset(TinyCorpus(4), tmp_path / "d.h5", CONFIG, progress=False)
    with h5py.File(tmp_path / "d.h5", "r+") as handle:
        meas = handle["meas"][0]
        meas[0, 0, 0] += 1e-3
        handle["meas"][0] = meas
    report = verify_dataset(tmp_path / "d.h5", samples=4)
    assert not report.ok and any("re-simulation differs" in p for p in report.problems)


def test_kill_and_resume(tmp_path):
    """SIGKILL a real run mid-write, rerun the same command: no lost, duplicated or corrupt sample."""
    out = tmp_path / "killed.h5"
    script = Path(__file__).with_name("dataset_fixtures.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(script.parent), str(script.parent.parent)]))
    for wait_parts in (1, 4):
        process = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
        parts = out.with_name(out.name + ".parts")
        deadline = time.time() + 60
        while time.time() < deadline and len(list(parts.glob("part-*.h5"))) < wait_parts:
            time.sleep(0.02)
        time.sleep(0.05)  # land somewhere inside the next part
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not out.exists()
    deadline = time.time() + 10  # its worker processes die with it
    while time.time() < deadline and _processes_running(str(out)):
        time.sleep(0.1)
    assert not _processes_running(str(out))
    from dataset_fixtures import TinyCorpus as Corpus

    corpus = Corpus(24, bad=("vid005",))
    config = DatasetConfig(B=4, T=2, size=(24, 24), noise="gaussian:sigma=0.01", part_size=3)
    report = make_dataset(corpus, out, config, progress=False)
    assert report.reused > 0 and report.complete
    assert [entry["video_id"] for entry in report.skipped] == ["vid005"]
    resumed = read_all(out)
    clean = read_all(make_dataset(corpus, tmp_path / "clean.h5", config, progress=False).path)
    assert sorted(resumed["index"].tolist()) == [i for i in range(24) if i != 5]
    for name in clean:
        np.testing.assert_array_equal(resumed[name], clean[name], err_msg=name)
    assert verify_dataset(out, samples=5).ok


def _processes_running(argument: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if argument in command and (entry / "stat").read_text().split()[2] != "Z":
                return True
    return False


def test_shards_merge_equals_single_process(tmp_path):
    corpus = TinyCorpus(11, bad=("vid007",))
    single = read_all(make_dataset(corpus, tmp_path / "single.h5", CONFIG, progress=False).path)
    shards = [make_dataset(corpus, tmp_path / "sharded.h5", CONFIG, shard=i, num_shards=3, progress=False).path for i in range(3)]
    assert shards == [shard_path(tmp_path / "sharded.h5", i, 3) for i in range(3)]
    merged = merge_shards(shards, tmp_path / "sharded.h5")
    with h5py.File(merged, "r") as handle:
        assert handle["meas"].is_virtual and handle["frames"].is_virtual
    data = read_all(merged)
    for name in single:
        np.testing.assert_array_equal(data[name], single[name], err_msg=name)
    assert dataset_info(merged)["num_samples"] == 10
    assert verify_dataset(merged).ok
    with pytest.raises(DataFileError, match="every shard"):
        merge_shards(shards[:2], tmp_path / "partial.h5")


def test_torchrun_environment_selects_the_shard(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    from snapcap.datasets.h5 import shard_from_env

    assert shard_from_env() == (1, 2)


def test_dataloader_two_workers_reads_everything_once(tmp_path):
    torch = pytest.importorskip("torch")
    from snapcap.datasets.torch_data import MeasurementDataset, SimulatedDataset, collate_samples

    corpus = TinyCorpus(9)
    path = make_dataset(corpus, tmp_path / "d.h5", CONFIG, progress=False).path
    dataset = MeasurementDataset(path)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_samples)
    seen = []
    for batch in loader:
        assert batch["meas"].shape[1:] == (2, 24, 24) and batch["frames"].shape[1:] == (2, 4, 24, 24, 3)
        assert batch["masks"].shape[1:] == (4, 24, 24)
        assert float(batch["frames"].max()) <= 1.0
        seen.extend(batch["index"].tolist())
    assert sorted(seen) == list(range(9))
    train = MeasurementDataset(path, split="train")
    assert len(train) == 3 and all(train[i]["split"] == "train" for i in range(3))
    # On-the-fly simulation gives the same samples as the file.
    simulated = SimulatedDataset(corpus, CONFIG)
    for position in (0, 4, 8):
        np.testing.assert_array_equal(simulated[position]["meas"].numpy(), dataset[position]["meas"].numpy())


def test_per_sample_masks(tmp_path):
    config = DatasetConfig(
        B=4, T=2, size=(24, 24), gray=True, per_sample_masks=True, mask="shifting", part_size=2, compression="gzip"
    )
    path = make_dataset(TinyCorpus(5), tmp_path / "p.h5", config, progress=False).path
    data = read_all(path)
    assert data["masks"].shape == (5, 4, 24, 24)
    assert not np.array_equal(data["masks"][0], data["masks"][1])
    assert verify_dataset(path).ok


def test_bad_inputs(tmp_path):
    corpus = TinyCorpus(4)
    make_dataset(corpus, tmp_path / "d.h5", CONFIG, progress=False)
    other = DatasetConfig(B=2, T=2, size=(24, 24))
    with pytest.raises(ConfigError, match="different configuration"):
        make_dataset(corpus, tmp_path / "d.h5", other, progress=False)
    # a partial run with other options is refused, not mixed in
    parts = tmp_path / "e.h5.parts"
    parts.mkdir()
    (parts / "config.json").write_text(json.dumps({"config_hash": "something-else"}))
    with pytest.raises(ConfigError, match="partial run"):
        make_dataset(corpus, tmp_path / "e.h5", CONFIG, progress=False)
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(DataFileError, match="not a snapcap dataset"):
        open_dataset(tmp_path / "plain.h5")
    data = (tmp_path / "d.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataFileError, match="cut.h5"):
        open_dataset(tmp_path / "cut.h5")
    with pytest.raises(DataFileError, match="no such dataset"):
        open_dataset(tmp_path / "missing.h5")
    with pytest.raises(Exception, match="noise"):
        DatasetConfig(noise="crackle")


# --- reliability: the data-loss cases of the reliability issue, each a regression test -----------


def _start_fixture_run(out: Path, *args: str) -> subprocess.Popen:
    script = Path(__file__).with_name("dataset_fixtures.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(script.parent), str(script.parent.parent)]))
    return subprocess.Popen([sys.executable, str(script), str(out), *args], env=env)


def _wait_for_parts(out: Path, count: int, timeout: float = 60) -> None:
    parts = out.with_name(out.name + ".parts")
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(parts.glob("part-*.h5"))) < count:
        time.sleep(0.02)


def test_resume_with_another_part_size_publishes_every_sample(tmp_path):
    """Killed with --part-size 3, rerun with --part-size 5: every sample, bytes equal to a clean run (was: 32 of 40)."""
    out = tmp_path / "killed.h5"
    process = _start_fixture_run(out, "3", "1")
    _wait_for_parts(out, 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists() and len(list(out.with_name(out.name + ".parts").glob("part-*.h5"))) >= 3
    corpus = TinyCorpus(24, bad=("vid005",))
    config = DatasetConfig(B=4, T=2, size=(24, 24), noise="gaussian:sigma=0.01", part_size=5)
    report = make_dataset(corpus, out, config, progress=False, workers=1)
    assert report.complete and report.reused >= 9
    assert report.reused + report.written == 24
    clean = read_all(make_dataset(corpus, tmp_path / "clean.h5", config, progress=False, workers=1).path)
    resumed = read_all(out)
    assert resumed["index"].tolist() == [i for i in range(24) if i != 5]
    for name in clean:
        np.testing.assert_array_equal(resumed[name], clean[name], err_msg=name)
    assert verify_dataset(out).ok


def test_a_second_writer_is_refused(tmp_path):
    """Two runs on one output: the second gets one clear error, the first finishes a whole file."""
    out = tmp_path / "shared.h5"
    process = _start_fixture_run(out, "3", "1", "0.2")  # about 5 s of work
    try:
        _wait_for_parts(out, 1)
        corpus = TinyCorpus(24, bad=("vid005",))
        config = DatasetConfig(B=4, T=2, size=(24, 24), noise="gaussian:sigma=0.01", part_size=3)
        with pytest.raises(DataFileError, match="another snapcap process is writing it"):
            make_dataset(corpus, out, config, progress=False, workers=1)
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
    report = verify_dataset(out)
    assert report.ok, report.summary()
    assert dataset_info(out)["num_samples"] == 23
    assert not list(tmp_path.glob(".shared.h5.lock")) and not out.with_name(out.name + ".parts").exists()


def test_merge_refuses_an_output_that_is_one_of_its_shards(tmp_path):
    corpus = TinyCorpus(6)
    shards = [make_dataset(corpus, tmp_path / "s.h5", CONFIG, shard=i, num_shards=2, progress=False).path for i in range(2)]
    before = read_all(shards[0])
    with pytest.raises(ConfigError, match="one of the shards"):
        merge_shards(shards, shards[0])
    after = read_all(shards[0])
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert verify_dataset(shards[0]).ok


def test_verify_catches_flips_outside_the_arrays(tmp_path):
    path = make_dataset(TinyCorpus(4), tmp_path / "d.h5", CONFIG, progress=False).path
    assert verify_dataset(path).ok
    with h5py.File(path, "r+") as handle:
        handle["captions"][1] = json.dumps(["video 1 caption a", "video 1 caption B"])
    report = verify_dataset(path)
    assert not report.ok and any("metadata_sha256" in problem for problem in report.problems)


def test_verify_reports_damage_instead_of_crashing(tmp_path):
    path = make_dataset(TinyCorpus(4), tmp_path / "d.h5", CONFIG, progress=False).path
    with h5py.File(path, "r") as handle:
        offset = handle["meas"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as raw:  # one byte of the first sample's measurement chunk: read error on re-simulation too
        raw.seek(offset + 40)
        byte = raw.read(1)
        raw.seek(offset + 40)
        raw.write(bytes([byte[0] ^ 0xFF]))
    with h5py.File(path, "r+") as handle:
        handle.attrs["config"] = "{not json"
    report = verify_dataset(path, samples=4)
    assert not report.ok
    assert any(problem.startswith("meas[0]") for problem in report.problems), report.summary()
    assert any("attribute config" in problem for problem in report.problems), report.summary()


def test_verify_catches_a_short_file(tmp_path):
    path = make_dataset(TinyCorpus(5), tmp_path / "d.h5", CONFIG, progress=False).path
    with h5py.File(path, "r+") as handle:  # as if two samples of the selection had been lost
        handle.attrs["index_range"] = json.dumps([0, 7])
    report = verify_dataset(path)
    assert not report.ok and any("neither stored nor listed as skipped" in problem for problem in report.problems)
