"""MATLAB v5 / v7.3 reading."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from helpers import data_path
from test_masks import write_mat_v73

from snapcap.errors import DataFileError, MissingKeyError
from snapcap.matfile import is_mat_v73, list_mat_variables, load_mat


def test_v5_and_v73_give_the_same_matlab_order(tmp_path):
    video = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)
    v5 = tmp_path / "v5.mat"
    v73 = tmp_path / "v73.mat"
    scipy.io.savemat(v5, {"orig": video, "mask": video > 50})
    write_mat_v73(v73, orig=video, mask=(video > 50).astype(np.uint8))
    assert not is_mat_v73(v5) and is_mat_v73(v73)
    a, b = load_mat(v5, ["orig"])["orig"], load_mat(v73, ["orig"])["orig"]
    np.testing.assert_array_equal(a, video)
    np.testing.assert_array_equal(b, video)
    assert list_mat_variables(v73)["orig"][0] == (4, 5, 6)
    assert list_mat_variables(v5)["orig"][0] == (4, 5, 6)


def test_shared_benchmark_variables():
    found = list_mat_variables(data_path("gray_benchmark/drop40_cacti.mat"))
    assert found["orig"][0] == (256, 256, 40) and found["mask"][0] == (256, 256, 8)


def test_errors_name_the_file_and_key(tmp_path):
    v5 = tmp_path / "v5.mat"
    scipy.io.savemat(v5, {"orig": np.zeros((2, 2))})
    with pytest.raises(MissingKeyError, match=r"v5.mat.*'meas'.*orig"):
        load_mat(v5, ["meas"])
    broken = tmp_path / "broken.mat"
    broken.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 20)
    with pytest.raises(DataFileError, match="broken.mat"):
        load_mat(broken)
    with pytest.raises(DataFileError, match="no such file"):
        load_mat(tmp_path / "nothing.mat")
    v73 = tmp_path / "v73.mat"
    write_mat_v73(v73, orig=np.zeros((8, 8, 4)))
    cut = tmp_path / "cut73.mat"
    cut.write_bytes(v73.read_bytes()[:1500])
    with pytest.raises(DataFileError, match="cut73.mat"):
        load_mat(cut, ["orig"])
