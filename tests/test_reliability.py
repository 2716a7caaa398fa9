"""Bad input from the command line: one line on stderr, exit status 2, no traceback, nothing left behind.

Each case is a command line a user could type with a wrong value, a wrong path or a damaged file.
argparse errors (unknown choice, a value of the wrong type or range) exit 2 with argparse's usage
line and one ``error:`` line; errors found while running exit 2 with one ``snapcap CMD: error:``
line.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from snapcap.caption.train import CaptionTrainConfig
from snapcap.cli.main import main
from snapcap.errors import ConfigError
from snapcap.hardware.emulate import write_mat_v5


@pytest.fixture
def files(tmp_path):
    video = (np.random.default_rng(0).random((1, 8, 16, 16)) * 255).astype(np.uint8)
    np.save(tmp_path / "video.npy", video)
    np.save(tmp_path / "masks5.npy", np.ones((5, 16, 16), np.float32))
    (tmp_path / "not_a_checkpoint.pt").write_bytes(b"this is not a torch file")
    (tmp_path / "truncated.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "folder").mkdir()
    orig = np.random.default_rng(1).random((16, 16, 8)) * 255
    orig[3, 4, 5] = np.nan
    write_mat_v5(tmp_path / "nan.mat", orig=orig, mask=np.ones((16, 16, 8)), meas=np.ones((16, 16, 1)))
    return tmp_path


PARSE_ERRORS = [
    ["simulate", "builtin:demo", "--mask-seed", "-1"],
    ["simulate", "builtin:demo", "--noise-seed", "x"],
    ["simulate", "builtin:demo", "--B", "0"],
    ["simulate", "builtin:demo", "--mask", "zebra"],
    ["simulate", "builtin:demo", "--size", "0x4"],
    ["dataset", "make", "--corpus", "nope", "-o", "x.h5"],
    ["dataset", "make", "--corpus", "synthetic", "--limit", "-1", "-o", "x.h5"],
    ["dataset", "verify", "x.h5", "--resimulate", "-1"],
    ["reconstruct", "x.mat", "--method", "nope", "-o", "out"],
    ["reconstruct", "x.mat", "--device", "bogus", "-o", "out"],
    ["reconstruct", "x.mat", "--recon-param", "nope:x=1", "-o", "out"],
    ["eval", "--data", "x.h5", "--model", "teacher", "--limit", "-1"],
    ["eval", "--data", "x.h5", "--model", "teacher", "--beam", "0"],
    ["compare", "--device", "bogus"],
    ["compare", "--B", "0"],
    ["compare", "--recon", "nope"],
    ["train", "teacher", "--epochs", "0", "-o", "out"],
    ["train", "recon", "--steps", "-5", "-o", "out"],
    ["capture", "info", "x.mat", "--layout", "nope"],
    ["train", "teacher", "--lr", "nan", "-o", "out"],
    ["train", "teacher", "--lr", "-1", "-o", "out"],
    ["train", "recon", "--lr", "inf", "-o", "out"],
    ["reconstruct", "x.mat", "--warm-start", "-3", "-o", "out"],
    ["reconstruct", "x.mat", "--sigmas", "50,-5", "-o", "out"],
    ["reconstruct", "x.mat", "--iterations", "0", "-o", "out"],
    ["reconstruct", "x.mat", "--tv-weight", "nan", "-o", "out"],
]


@pytest.mark.parametrize("argv", PARSE_ERRORS, ids=lambda argv: " ".join(argv))
def test_bad_values_are_refused_when_read(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line], err


RUN_ERRORS = [
    (["simulate", "{d}/missing.npy"], "no such file"),
    (["simulate", "{d}/video.npy", "--stored-mask"], "holds no mask"),
    (["simulate", "{d}/video.npy", "-o", "{d}/out.txt"], ".npz, .h5"),
    (["simulate", "{d}/video.npy", "-o", "{d}/folder"], "folder"),
    (["simulate", "{d}/video.npy", "-o", "{d}/a_file/out.npz"], "a_file"),
    (["reconstruct", "{d}/missing.mat", "-o", "{d}/r"], "missing.mat"),
    (["reconstruct", "{d}/truncated.h5", "-o", "{d}/r"], "truncated.h5"),
    (["dataset", "info", "{d}/truncated.h5"], "truncated.h5"),
    (["dataset", "verify", "{d}/missing.h5"], "no such"),
    (["dataset", "merge", "{d}/missing.h5", "-o", "{d}/m.h5"], "no such shard"),
    (["caption", "{d}/video.npy", "--model", "{d}/not_a_checkpoint.pt"], "not_a_checkpoint.pt"),
    (["caption", "{d}/missing.h5", "--model", "teacher"], "no such file"),
    (["eval", "--data", "{d}/missing.h5", "--model", "snapcap"], "--checkpoints"),
    (["train", "snapcap", "--num-videos", "2", "-o", "{d}/s"], "teacher.pt"),
    (["train", "snapcap", "--preset", "paper", "-o", "{d}/s"], "--preset"),
    (["capture", "preview", "{d}/video.npy", "-o", "{d}/p.txt"], "image"),
    (["compare", "--preset", "micro", "--size", "48x64", "-o", "{d}/c"], "square"),
    (["compare", "--preset", "micro", "--mask-file", "{d}/masks5.npy", "-o", "{d}/c"], "--capture"),
    (["compare", "--capture", "{d}/video.npy", "-o", "{d}/c"], "--checkpoints"),
    (["compare", "--preset", "micro", "--recon-param", "gap-tv:bogus=1", "-o", "{d}/c"], "no parameter 'bogus'"),
    (["dataset", "make", "--corpus", "synthetic", "--num-videos", "2", "--B", "100000", "-o", "{d}/big.h5"], "lower B"),
    (["dataset", "merge", "{d}/video.npy", "-o", "{d}/video.npy"], "video.npy"),
    (["simulate", "{d}/nan.mat"], "NaN"),
    (["simulate", "{d}/video.npy", "--B", "4", "--duty", "0"], "zero everywhere"),
    (["dataset", "make", "--corpus", "synthetic", "--num-videos", "2", "--size", "16", "--duty", "0", "-o", "{d}/z.h5"], "zero"),
    (["dataset", "make", "--corpus", "benchmark", "--paths", "{d}/nan.mat", "-o", "{d}/nan.h5"], "NaN"),
]


@pytest.mark.parametrize("argv, expected", RUN_ERRORS, ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_bad_inputs_are_one_line(argv, expected, files, capsys):
    capsys.readouterr()
    code = main([token.format(d=files) for token in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [  # the error, without deprecation notes and progress bars of work done before the failure
        line
        for line in err.replace("\r", "\n").splitlines()
        if line.strip() and not line.startswith("snapcap: ") and "deprecated" not in line and "%|" not in line
    ]
    assert len(lines) == 1 and lines[0].startswith(f"snapcap {argv[0]}: error: "), err
    assert expected in lines[0], err
    assert not list(files.rglob(".tmp-*")), "a temporary file was left behind"
    assert not list(files.rglob("*.parts")) and not list(files.rglob(".*.lock")), "a half-made dataset was left behind"


@pytest.mark.parametrize(
    "field, value",
    [("lr", math.nan), ("lr", -1.0), ("lr_proj", math.inf), ("batch_size", 0), ("epochs", -1), ("weight_decay", math.nan)],
)
def test_training_configuration_refuses_impossible_values(field, value):
    with pytest.raises(ConfigError, match=field):
        CaptionTrainConfig(**{field: value})


# --- the Python API: every misuse is a SnapcapError ----------------------------------------------


def _api_cases():
    import torch

    from snapcap.cacti import CactiOperator, simulate
    from snapcap.recon.api import reconstruct

    masks = (np.random.default_rng(0).random((8, 16, 16)) > 0.5).astype(np.float32)
    video = np.random.default_rng(0).random((1, 16, 16, 16)).astype(np.float32)
    op = CactiOperator(masks)
    y = op.A(video[0, :8])
    read_only = np.zeros((1, 2, 16, 16), np.float32)
    read_only.setflags(write=False)
    meta = {"device": "meta"}
    return {
        "meta masks": lambda: CactiOperator(torch.zeros((8, 16, 16), **meta)),
        "meta frames": lambda: op.A(torch.zeros((8, 16, 16), **meta)),
        "meta video": lambda: simulate(torch.zeros((1, 16, 16, 16), **meta), B=8),
        "meta measurement": lambda: reconstruct(torch.zeros((16, 16), **meta), op, "gap-tv"),
        "gamma not a number": lambda: op.prox_l2(video[0, :8], y, gamma="x"),
        "negative seed": lambda: simulate(video, B=8, seed=-1),
        "string seed": lambda: simulate(video, B=8, seed="a"),
        "negative noise seed": lambda: simulate(video, B=8, noise="gaussian:sigma=0.1", noise_seed=-1),
        "read-only out": lambda: simulate(video, B=8, out=read_only),
        "integer out": lambda: simulate(video, B=8, out=np.zeros((1, 2, 16, 16), np.int16)),
        "video None": lambda: simulate(None, B=8),
        "video list": lambda: simulate([[1, 2]], B=8),
        "fractional B": lambda: simulate(video, B=4.5),
        "boolean B": lambda: simulate(video, B=True),
        "float video above 1": lambda: simulate(video * 3, B=8),
        "all-zero masks (operator)": lambda: CactiOperator(np.zeros((8, 16, 16), np.float32)),
        "all-zero masks (simulate)": lambda: simulate(video, masks=np.zeros((8, 16, 16), np.float32)),
    }


@pytest.mark.parametrize("name", list(_api_cases()))
def test_api_misuse_is_a_snapcap_error(name):
    from snapcap.errors import SnapcapError

    with pytest.raises(SnapcapError):
        _api_cases()[name]()


def test_memory_is_checked_before_work():
    from snapcap.datasets.h5 import DatasetConfig, check_memory

    small = DatasetConfig(B=8, T=8, size=(224, 224))
    assert check_memory(small, workers=4, available=16 * 2**30) < 2**30
    with pytest.raises(ConfigError, match="lower B"):
        check_memory(DatasetConfig(B=2048, T=8, size=(224, 224)), workers=2, available=16 * 2**30)


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it: one line, status 130, workers gone, work kept."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "s.h5"
    argv = [sys.executable, "-m", "snapcap", "dataset", "make", "--corpus", "synthetic", "--num-videos", "5000", "--size", "64"]
    argv += ["--part-size", "2", "--no-frames", "-o", str(out)]
    process = subprocess.Popen(  # SIGINT as a terminal leaves it, even when this test runs from a background job
        argv,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    parts = out.with_name(out.name + ".parts")
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.h5"))) < 2 and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be interrupted"  # 5,000 videos: about 25 s of work
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "snapcap dataset: interrupted" in err, err
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker outlives the command
        os.killpg(process.pid, 0)
    assert list(parts.glob("part-*.h5")) and not out.exists()


def test_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    """``ulimit -f``: the write fails with one line (exit 2), not SIGXFSZ (exit 153), and no partial file stays."""
    import resource
    import subprocess
    import sys

    video = (np.random.default_rng(0).random((1, 16, 64, 64)) * 255).astype(np.uint8)
    np.save(tmp_path / "video.npy", video)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "big.npz"
    argv = [sys.executable, "-m", "snapcap", "simulate", str(tmp_path / "video.npy"), "--B", "4", "--save-frames", "--no-montage"]
    run = subprocess.run([*argv, "-o", str(out)], capture_output=True, text=True, preexec_fn=limit)
    assert run.returncode == 2, run.stderr
    assert "file-size limit" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


# --- a property: any flags with odd values, on inputs that do not exist --------------------------

ODD_VALUES = [
    "-1",
    "0",
    "nan",
    "inf",
    "-inf",
    "x",
    "",
    "1e12",
    "3.5",
    "a:b=c",
    "gap-tv:iterations=-2",
    "/nonexistent/y",
    "all",
    "5:2",
]
FAST_FAILING = {  # a base command line that must fail quickly whatever else is added (its flags are not varied)
    ("simulate",): ["simulate", "/nonexistent/video.npy"],
    ("reconstruct",): ["reconstruct", "/nonexistent/x.mat", "-o", "{tmp}/r"],
    ("caption",): ["caption", "/nonexistent/x.h5", "--model", "/nonexistent/m.pt"],
    ("eval",): ["eval", "--data", "/nonexistent/x.h5", "--model", "/nonexistent/m.pt"],
    ("capture", "info"): ["capture", "info", "/nonexistent/x.mat"],
    ("capture", "preview"): ["capture", "preview", "/nonexistent/x.mat", "-o", "{tmp}/p.png"],
    ("dataset", "info"): ["dataset", "info", "/nonexistent/x.h5"],
    ("dataset", "verify"): ["dataset", "verify", "/nonexistent/x.h5"],
    ("dataset", "merge"): ["dataset", "merge", "/nonexistent/x.h5", "-o", "{tmp}/m.h5"],
    ("dataset", "make"): ["dataset", "make", "--corpus", "folder", "--root", "/nonexistent/videos", "-o", "{tmp}/d.h5"],
    ("train", "recon"): ["train", "recon", "--data", "/nonexistent/x.h5", "-o", "{tmp}/t"],
    ("train", "teacher"): ["train", "teacher", "--data", "/nonexistent/x.h5", "-o", "{tmp}/t"],
    ("train", "vccv"): ["train", "vccv", "--data", "/nonexistent/x.h5", "-o", "{tmp}/t"],
    ("compare",): ["compare", "--capture", "/nonexistent/c.mat", "--checkpoints", "/nonexistent/run", "-o", "{tmp}/c"],
}
FIXED = {"-o", "--out", "--data", "--model", "--capture", "--checkpoints", "--corpus", "--root", "-h", "--help", "--version"}


def _flags(path: tuple[str, ...]) -> list[str]:
    import argparse

    from snapcap.cli.main import build_parser

    parser = build_parser()
    for word in path:
        sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        parser = sub.choices[word]
    return sorted({option for action in parser._actions for option in action.option_strings if option.startswith("--")} - FIXED)


def test_any_flags_on_missing_inputs_fail_in_one_line(tmp_path_factory):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    flags = {path: _flags(path) for path in FAST_FAILING}
    tmp = tmp_path_factory.mktemp("fuzz")

    @hypothesis.settings(max_examples=150, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.sampled_from(sorted(FAST_FAILING)), st.data())
    def check(path, data):
        choices = flags[path] or ["--no-such-flag"]
        extra = data.draw(st.lists(st.tuples(st.sampled_from(choices), st.sampled_from(ODD_VALUES)), max_size=4))
        argv = [token.format(tmp=tmp) for token in FAST_FAILING[path]]
        for flag, value in extra:
            argv += [flag, value]
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: usage and one error line
                code = exc.code
        text = err.getvalue()
        assert code == 2, (argv, code, text)
        assert "Traceback" not in text, (argv, text)
        errors = [line for line in text.splitlines() if "error:" in line]
        assert len(errors) == 1, (argv, text)

    check()


@pytest.mark.parametrize("text", ["5:2", "3:3", ""])
def test_an_empty_selection_is_refused(text):
    """``--samples 5:2`` selected nothing and printed nothing (exit 0) in caption; now it is an error."""
    from snapcap.recon.inputs import parse_selection

    with pytest.raises(ConfigError, match="selects nothing|must look like"):
        parse_selection(text, 8, "samples")
    assert parse_selection("2:4", 8, "samples") == [2, 3]
