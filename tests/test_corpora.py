"""Corpus readers: MSR-VTT, MSVD, any video folder, the SCI benchmark, and open_corpus."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import data_path

from snapcap.datasets.base import VideoItem
from snapcap.datasets.corpora import CORPORA, MSRVTT, MSVD, SCIBenchmark, VideoFolder, open_corpus
from snapcap.datasets.video import clip_indices
from snapcap.errors import ConfigError, DataFileError, MissingKeyError, ShapeError, SnapcapError

FRAMES, HEIGHT, WIDTH = 20, 32, 40


def write_video(path: Path, frames: int = FRAMES, fourcc: str | None = None) -> Path:
    """A tiny video whose frame i is a flat gray of brightness 10 + 12 i."""
    cv2 = pytest.importorskip("cv2")
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = fourcc or ("mp4v" if path.suffix == ".mp4" else "MJPG")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    for i in range(frames):
        writer.write(np.full((HEIGHT, WIDTH, 3), 10 + 12 * i, np.uint8))
    writer.release()
    return path


def frame_numbers(clip: np.ndarray) -> np.ndarray:
    """Which source frame each (T, B) frame of a gray clip of write_video came from."""
    return np.rint((clip.reshape(clip.shape[:2] + (-1,)).mean(axis=-1) - 10) / 12).astype(int)


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


# --- MSR-VTT --------------------------------------------------------------------------------


def msrvtt_tree(root: Path) -> Path:
    """Official pair of annotation files in root/annotation, videos spread over the layouts."""
    train_val = {
        "info": {"year": 2016},
        "videos": [
            {
                "category": 9,
                "url": "https://www.youtube.com/watch?v=a",
                "video_id": "video0",
                "start time": 137.72,
                "end time": 149.44,
                "split": "train",
                "id": 0,
            },
            {
                "category": 16,
                "url": "https://www.youtube.com/watch?v=b",
                "video_id": "video1",
                "start time": 1.0,
                "end time": 9.0,
                "split": "train",
                "id": 1,
            },
            {
                "category": 3,
                "url": "https://www.youtube.com/watch?v=c",
                "video_id": "video2",
                "start time": 2.0,
                "end time": 12.0,
                "split": "validate",
                "id": 2,
            },
        ],
        "sentences": [
            {"caption": "a cartoon shows a dog", "video_id": "video0", "sen_id": 2},
            {"caption": "a man drives a car", "video_id": "video1", "sen_id": 5},
            {"caption": "a dog runs in a cartoon", "video_id": "video0", "sen_id": 0},
            {"caption": "someone talks about a dog", "video_id": "video0", "sen_id": 1},
            {"caption": "people are cooking", "video_id": "video2", "sen_id": 7},
        ],
    }
    test = {
        "videos": [{"category": 0, "url": "u", "video_id": "video3", "start time": 0, "end time": 5, "split": "test", "id": 3}],
        "sentences": [{"caption": "a band plays music", "video_id": "video3", "sen_id": 9}],
    }
    write_json(root / "annotation" / "train_val_videodatainfo.json", train_val)
    write_json(root / "annotation" / "test_videodatainfo.json", test)
    write_video(root / "TrainValVideo" / "video0.mp4")
    write_video(root / "TrainValVideo" / "video1.mp4", frames=12)
    write_video(root / "videos" / "all" / "video1.mp4")  # searched first: wins over TrainValVideo
    write_video(root / "TestVideo" / "video3.mp4")
    return root  # video2 is annotated but not downloaded


def test_msrvtt_official_pair(tmp_path):
    corpus = MSRVTT(msrvtt_tree(tmp_path))
    assert corpus.name == "msrvtt" and len(corpus) == 4
    assert [item.video_id for item in corpus.items] == ["video0", "video1", "video2", "video3"]
    assert [item.split for item in corpus.items] == ["train", "train", "val", "test"]
    assert corpus.describe()["splits"] == {"train": 2, "val": 1, "test": 1}
    video0 = corpus["video0"]
    assert video0.captions == ("a dog runs in a cartoon", "someone talks about a dog", "a cartoon shows a dog")  # sen_id order
    assert video0.path == tmp_path / "TrainValVideo" / "video0.mp4"
    assert video0.extra["category"] == 9 and video0.extra["start time"] == 137.72
    assert corpus["video1"].path == tmp_path / "videos" / "all" / "video1.mp4"
    assert corpus["video3"].path == tmp_path / "TestVideo" / "video3.mp4"
    # an annotated id without a file is kept, with the path where it was expected
    assert corpus["video2"].path == tmp_path / "videos" / "all" / "video2.mp4"
    assert [item.video_id for item in corpus.missing_videos()] == ["video2"]
    assert [f.name for f in corpus.annotation_files] == ["train_val_videodatainfo.json", "test_videodatainfo.json"]

    clip = corpus.clip(video0, T=2, B=4, size=(HEIGHT, WIDTH), gray=True)
    assert clip.shape == (2, 4, HEIGHT, WIDTH) and clip.dtype == np.uint8
    np.testing.assert_array_equal(frame_numbers(clip), [[3, 4, 5, 6], [13, 14, 15, 16]])
    rgb = corpus.clip(video0, T=2, B=4, size=(16, 16))
    assert rgb.shape == (2, 4, 16, 16, 3)
    with pytest.raises(DataFileError, match="video2"):
        corpus.clip(corpus["video2"], T=2, B=4, size=(16, 16))


def test_msrvtt_combined_file_and_explicit_annotations(tmp_path):
    videos = [{"video_id": f"video{i}", "split": split} for i, split in enumerate(["train", "validate", "test", "test"])]
    sentences = [{"video_id": "video0", "caption": "first"}, {"video_id": "video0", "caption": "second"}]
    write_json(tmp_path / "videodatainfo.json", {"videos": videos, "sentences": sentences})
    write_video(tmp_path / "video2.mp4", frames=6)  # directly in root
    corpus = MSRVTT(tmp_path)
    assert [item.split for item in corpus.items] == ["train", "val", "test", "test"]
    assert corpus["video0"].captions == ("first", "second")  # no sen_id: file order
    assert corpus["video2"].path == tmp_path / "video2.mp4"
    assert corpus["video1"].captions == ()
    # explicit files, several of them: the same videos from two files
    left = write_json(tmp_path / "a.json", {"videos": videos[:2], "sentences": sentences})
    right = write_json(tmp_path / "b.json", {"videos": videos[2:], "sentences": []})
    again = MSRVTT.from_path(tmp_path, annotations=[left, right])
    assert [item.video_id for item in again.items] == [item.video_id for item in corpus.items]
    assert open_corpus("msrvtt", root=tmp_path, annotations=left).describe()["videos"] == 2


def test_msrvtt_bad_annotations(tmp_path):
    with pytest.raises(DataFileError, match="no such MSR-VTT folder"):
        MSRVTT(tmp_path / "nowhere")
    with pytest.raises(DataFileError, match="no MSR-VTT annotations found"):
        MSRVTT(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": [\n {"video_id": "video0", "split": "train"},\n ]}')
    with pytest.raises(DataFileError, match=r"bad\.json: malformed JSON at line 3"):
        MSRVTT(tmp_path, annotations=bad)
    no_sentences = write_json(tmp_path / "nosent.json", {"videos": [{"video_id": "video0", "split": "train"}]})
    with pytest.raises(DataFileError, match=r"nosent\.json: no 'sentences' list"):
        MSRVTT(tmp_path, annotations=no_sentences)
    unknown = write_json(
        tmp_path / "unknown.json",
        {
            "videos": [{"video_id": "video0", "split": "train"}],
            "sentences": [{"video_id": "video0", "caption": "ok"}, {"video_id": "video77", "caption": "x"}],
        },
    )
    with pytest.raises(DataFileError, match=r"unknown\.json: sentences\[1\]: video_id 'video77'"):
        MSRVTT(tmp_path, annotations=unknown)
    bad_split = write_json(tmp_path / "split.json", {"videos": [{"video_id": "video0", "split": "holdout"}], "sentences": []})
    with pytest.raises(DataFileError, match=r"split\.json: videos\[0\] \(video0\): split 'holdout'"):
        MSRVTT(tmp_path, annotations=bad_split)
    no_id = write_json(tmp_path / "noid.json", {"videos": [{"split": "train"}], "sentences": []})
    with pytest.raises(DataFileError, match=r"noid\.json: videos\[0\]: video_id None"):
        MSRVTT(tmp_path, annotations=no_id)


# --- MSVD -----------------------------------------------------------------------------------

MSVD_TXT = """# Microsoft Research Video Description Corpus
# clip_name description
-4wsuPCjDBc_5_15 a squirrel is eating a peanut in it's shell
-4wsuPCjDBc_5_15 a chipmunk is eating

-7KMZQEsJW4_205_208 a woman is slicing an onion
zv2RIbUsnSw_335_341 a man plays a guitar
"""


def msvd_csv(path: Path) -> Path:
    header = ["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description"]
    rows = [
        ["-4wsuPCjDBc", "5", "15", "1", "clean", "30", "English", "A squirrel is eating a peanut."],
        ["-4wsuPCjDBc", "5", "15", "2", "clean", "31", "Spanish", "Una ardilla come."],
        ["-4wsuPCjDBc", "5", "15", "3", "unverified", "35", "English", "A chipmunk, eating."],
        ["-7KMZQEsJW4", "205", "208", "4", "clean", "12", "English", "A woman slices an onion."],
        ["notInCorpus", "1", "2", "5", "clean", "12", "English", "ignored"],
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
        handle.write("-7KMZQEsJW4,205,208,6,clean,9,English,A woman, with a knife, cuts an onion.\n")  # unquoted commas
    return path


def msvd_tree(root: Path) -> Path:
    for clip in ("-4wsuPCjDBc_5_15", "-7KMZQEsJW4_205_208", "zv2RIbUsnSw_335_341"):
        write_video(root / "YouTubeClips" / f"{clip}.avi")
    (root / "AllVideoDescriptions.txt").write_text(MSVD_TXT)
    return root


def test_msvd_text_captions_without_mapping(tmp_path):
    corpus = MSVD(msvd_tree(tmp_path))
    assert corpus.name == "msvd" and corpus.mapping_file is None
    assert [item.video_id for item in corpus.items] == ["-4wsuPCjDBc_5_15", "-7KMZQEsJW4_205_208", "zv2RIbUsnSw_335_341"]
    assert all(item.split == "train" for item in corpus.items)  # fewer than 1,200 clips: all train
    assert corpus["-4wsuPCjDBc_5_15"].captions == ("a squirrel is eating a peanut in it's shell", "a chipmunk is eating")
    assert corpus["zv2RIbUsnSw_335_341"].path == tmp_path / "YouTubeClips" / "zv2RIbUsnSw_335_341.avi"
    clip = corpus.clip(corpus.items[0], T=4, B=2, size=(HEIGHT, WIDTH), gray=True)
    np.testing.assert_array_equal(frame_numbers(clip), [[1, 2], [6, 7], [11, 12], [16, 17]])


def test_msvd_csv_captions_with_mapping(tmp_path):
    msvd_tree(tmp_path)
    (tmp_path / "AllVideoDescriptions.txt").unlink()
    csv_path = msvd_csv(tmp_path / "MSR Video Description Corpus.csv")
    (tmp_path / "youtube_mapping.txt").write_text(
        "zv2RIbUsnSw_335_341 vid1500\n-4wsuPCjDBc_5_15 vid1\n-7KMZQEsJW4_205_208 vid1250\nnot_downloaded_1_2 vid2\n"
    )
    corpus = MSVD(tmp_path)
    assert corpus.captions_file == csv_path
    assert [item.video_id for item in corpus.items] == [
        "-4wsuPCjDBc_5_15",
        "not_downloaded_1_2",
        "-7KMZQEsJW4_205_208",
        "zv2RIbUsnSw_335_341",
    ]
    assert [item.split for item in corpus.items] == ["train", "train", "val", "test"]
    assert corpus["-7KMZQEsJW4_205_208"].extra["vid"] == "vid1250"
    assert corpus["-4wsuPCjDBc_5_15"].captions == ("A squirrel is eating a peanut.", "A chipmunk, eating.")  # English only
    assert corpus["-7KMZQEsJW4_205_208"].captions == ("A woman slices an onion.", "A woman, with a knife, cuts an onion.")
    assert corpus["zv2RIbUsnSw_335_341"].captions == ()
    assert corpus.unmatched_captions == 1
    assert [item.video_id for item in corpus.missing_videos()] == ["not_downloaded_1_2"]
    assert corpus["not_downloaded_1_2"].path == tmp_path / "YouTubeClips" / "not_downloaded_1_2.avi"


def test_msvd_default_split_counts_without_mapping(tmp_path):
    names = [f"clip{i:04d}_0_1" for i in range(1310)]
    (tmp_path / "captions.txt").write_text("".join(f"{name} caption of {name}\n" for name in reversed(names)))
    corpus = MSVD(tmp_path, captions=tmp_path / "captions.txt")  # no videos: clips from the captions
    assert corpus.describe()["splits"] == {"train": 1200, "val": 100, "test": 10}
    assert [item.video_id for item in corpus.items] == names  # sorted by name
    assert corpus.items[1200].split == "val" and corpus.items[1300].split == "test"


def test_msvd_bad_files(tmp_path):
    with pytest.raises(DataFileError, match="no such MSVD folder"):
        MSVD(tmp_path / "missing")
    (tmp_path / "AllVideoDescriptions.txt").write_text("# comment\nclipA_1_2 fine\nclipB_1_2\n")
    with pytest.raises(DataFileError, match=r"AllVideoDescriptions\.txt: line 3 .*clipB_1_2"):
        MSVD(tmp_path)
    (tmp_path / "AllVideoDescriptions.txt").write_text("clipA_1_2 fine\n")
    (tmp_path / "youtube_mapping.txt").write_text("clipA_1_2 vid1\nclipB_1_2 video2\n")
    with pytest.raises(DataFileError, match=r"youtube_mapping\.txt: line 2"):
        MSVD(tmp_path)
    (tmp_path / "youtube_mapping.txt").write_text("clipA_1_2 vid1\nclipB_1_2 vid1\n")
    with pytest.raises(DataFileError, match=r"line 2: vid1 is already used on line 1"):
        MSVD(tmp_path)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("video,text\nclipA,hello\n")
    with pytest.raises(DataFileError, match=r"wrong\.csv: no column VideoID"):
        MSVD(tmp_path, captions=wrong, mapping=None)
    with pytest.raises(DataFileError, match="no such MSVD mapping file"):
        MSVD(tmp_path, mapping=tmp_path / "nope.txt")


# --- any folder -----------------------------------------------------------------------------


def folder_tree(root: Path) -> Path:
    write_video(root / "cats" / "cat01.avi")
    write_video(root / "cats" / "cat02.mp4", frames=10)
    write_video(root / "dog.AVI")
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden.mp4").write_bytes(b"")
    return root


def test_video_folder_csv(tmp_path):
    root = folder_tree(tmp_path / "videos")
    captions = tmp_path / "captions.csv"
    captions.write_text(
        "video_id,caption,split\ncats/cat01,a cat sleeps,test\ncats/cat01,a kitten naps,\n./dog.AVI,a dog barks,validation\n"
    )
    corpus = VideoFolder(root, captions)
    assert corpus.name == "folder"
    assert [item.video_id for item in corpus.items] == ["cats/cat01", "cats/cat02", "dog"]
    assert corpus["cats/cat01"].captions == ("a cat sleeps", "a kitten naps") and corpus["cats/cat01"].split == "test"
    assert corpus["dog"].split == "val" and corpus["dog"].path == root / "dog.AVI"
    assert corpus["cats/cat02"].captions == () and corpus["cats/cat02"].split == "train"  # default split (1 video: train)
    assert corpus["cats/cat02"].extra["split_source"] == "default"
    clip = corpus.clip(corpus["cats/cat02"], T=3, B=4, size=(HEIGHT, WIDTH), gray=True)  # 10 frames < T*B: overlapping windows
    np.testing.assert_array_equal(frame_numbers(clip), [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    np.testing.assert_array_equal(frame_numbers(clip), clip_indices(10, 3, 4))
    alt = tmp_path / "alt.csv"
    alt.write_text("File,Caption\ncats/cat02.mp4,a cat walks\n")
    assert VideoFolder(root, alt)["cats/cat02"].captions == ("a cat walks",)


def test_video_folder_json_both_forms(tmp_path):
    root = folder_tree(tmp_path / "videos")
    mapping = write_json(tmp_path / "map.json", {"dog": ["a dog barks", "a dog"], "cats/cat02.mp4": "one caption"})
    corpus = VideoFolder.from_path(root, mapping)
    assert corpus["dog"].captions == ("a dog barks", "a dog") and corpus["cats/cat02"].captions == ("one caption",)
    listing = write_json(
        tmp_path / "list.json",
        [{"video_id": "dog", "caption": "barking", "split": "test"}, {"video_id": "cats/cat01", "caption": "sleeping"}],
    )
    corpus = VideoFolder(root, listing)
    assert corpus["dog"].split == "test" and corpus["cats/cat01"].captions == ("sleeping",)
    assert corpus["cats/cat01"].extra["split_source"] == "default"


def test_video_folder_default_split_is_80_10_10(tmp_path):
    for i in range(10):
        (tmp_path / f"v{i}.mp4").write_bytes(b"")  # reading does not decode
    corpus = VideoFolder(tmp_path)
    assert [item.split for item in corpus.items] == ["train"] * 8 + ["val", "test"]
    assert corpus.describe()["splits"] == {"train": 8, "val": 1, "test": 1}


def test_video_folder_bad_captions(tmp_path):
    root = folder_tree(tmp_path / "videos")
    with pytest.raises(DataFileError, match="no such video folder"):
        VideoFolder(tmp_path / "absent", None)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("video_id,caption\ndog,fine\nhorse,a horse runs\n")
    with pytest.raises(DataFileError, match=r"unknown\.csv: line 3: video 'horse' is not in"):
        VideoFolder(root, unknown)
    no_caption = tmp_path / "nocap.csv"
    no_caption.write_text("video_id,text\ndog,hello\n")
    with pytest.raises(DataFileError, match=r"nocap\.csv: the header is video_id, text; expected .* caption column"):
        VideoFolder(root, no_caption)
    conflict = tmp_path / "conflict.csv"
    conflict.write_text("video,caption,split\ndog,a,train\ndog,b,test\n")
    with pytest.raises(DataFileError, match=r"conflict\.csv: line 3: video 'dog' has split 'test'"):
        VideoFolder(root, conflict)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"dog": ["a"')
    with pytest.raises(DataFileError, match=r"bad\.json: malformed JSON at line 1"):
        VideoFolder(root, bad_json)
    unknown_json = write_json(
        tmp_path / "unknown.json", [{"video_id": "dog", "caption": "a"}, {"video_id": "cow", "caption": "b"}]
    )
    with pytest.raises(DataFileError, match=r"unknown\.json: \[1\]: video 'cow'"):
        VideoFolder(root, unknown_json)
    not_list = write_json(tmp_path / "num.json", {"dog": 3})
    with pytest.raises(DataFileError, match=r"num\.json: entry 'dog'"):
        VideoFolder(root, not_list)
    with pytest.raises(DataFileError, match="unknown caption file type"):
        VideoFolder(root, (tmp_path / "captions.tsv", (tmp_path / "captions.tsv").write_text("x"))[0])


def test_corrupt_video_raises_data_file_error(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    corpus = VideoFolder(tmp_path)
    with pytest.raises(DataFileError, match="broken.mp4"):
        corpus.clip(corpus["broken"], T=2, B=4, size=(16, 16))


# --- SCI benchmark --------------------------------------------------------------------------


def test_benchmark_drop40():
    import scipy.io

    path = data_path("gray_benchmark/drop40_cacti.mat")
    corpus = SCIBenchmark(path)
    assert corpus.name == "benchmark" and len(corpus) == 1
    item = corpus.items[0]
    assert item == VideoItem("drop40_cacti", "test", (), path)
    assert item.extra["mask_key"] == "mask" and item.extra["frames"] == 40
    clip = corpus.clip(item, T=5, B=8, size=(256, 256))
    assert clip.shape == (5, 8, 256, 256) and clip.dtype == np.uint8
    data = scipy.io.loadmat(str(path))
    np.testing.assert_array_equal(clip, np.moveaxis(data["orig"], -1, 0).reshape(5, 8, 256, 256))
    masks = corpus.stored_masks(item, B=8)
    assert masks.shape == (8, 256, 256) and masks.dtype == np.float32
    # snapshot k = frames kB..kB+B-1: with the stored mask this reproduces the stored meas exactly
    meas = np.einsum("bhw,tbhw->hwt", masks.astype(np.float64), clip.astype(np.float64))
    np.testing.assert_array_equal(meas, data["meas"].astype(np.float64))
    with pytest.raises(ShapeError, match="256x256"):
        corpus.clip(item, T=5, B=8, size=(128, 128))
    assert corpus.clip(item, T=2, B=8, size=(128, 96), resize=True).shape == (2, 8, 128, 96)
    assert corpus.clip(item, T=1, B=8, size=(256, 256), gray=False).shape == (1, 8, 256, 256, 3)


def test_benchmark_folder_and_short_scene():
    folder = data_path("gray_benchmark/drop8_cacti.mat").parent
    corpus = open_corpus("benchmark", paths=folder)
    assert sorted(item.video_id for item in corpus.items) == ["drop40_cacti", "drop8_cacti", "runner40_cacti", "runner8_cacti"]
    drop8 = next(item for item in corpus.items if item.video_id == "drop8_cacti")
    clip = corpus.clip(drop8, T=2, B=8, size=None)  # 8 frames < T*B: clip_indices windows
    assert clip.shape == (2, 8, 256, 256)
    np.testing.assert_array_equal(clip[0], clip[1])
    assert corpus.describe()["splits"] == {"train": 0, "val": 0, "test": 4}


def test_benchmark_bad_files(tmp_path):
    import scipy.io

    with pytest.raises(DataFileError, match="no such benchmark"):
        SCIBenchmark(tmp_path / "absent.mat")
    scipy.io.savemat(tmp_path / "nomask.mat", {"orig": np.zeros((8, 8, 4), np.uint8)})
    scipy.io.savemat(tmp_path / "noorig.mat", {"mask": np.zeros((8, 8, 4), np.uint8)})
    with pytest.raises(MissingKeyError, match=r"noorig\.mat: no variable 'orig'"):
        SCIBenchmark(tmp_path / "noorig.mat")
    corpus = SCIBenchmark([tmp_path / "nomask.mat"])
    with pytest.raises(MissingKeyError, match="no mask variable"):
        corpus.stored_masks(corpus.items[0])
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataFileError, match=r"junk\.mat"):
        SCIBenchmark(tmp_path / "junk.mat")


# --- registry -------------------------------------------------------------------------------


def test_open_corpus_registry(tmp_path):
    assert set(CORPORA) == {"msrvtt", "msvd", "folder", "benchmark", "synthetic"}
    with pytest.raises(ConfigError, match="msrvtt, msvd, folder, benchmark, synthetic"):
        open_corpus("kinetics")
    with pytest.raises(ConfigError, match="'folder' takes"):
        open_corpus("folder", root=tmp_path, subtitles="x.csv")
    (tmp_path / "a.mp4").write_bytes(b"")
    corpus = open_corpus("Folder", root=tmp_path)
    assert isinstance(corpus, VideoFolder) and len(corpus) == 1
    with pytest.raises(SnapcapError):
        open_corpus("msvd", root=tmp_path / "missing")


def test_open_corpus_synthetic_when_available():
    try:
        from snapcap.datasets.synthetic import SyntheticCorpus
    except ImportError:
        pytest.skip("snapcap.datasets.synthetic.SyntheticCorpus is not written yet")
    import inspect

    required = [
        name
        for name, param in inspect.signature(SyntheticCorpus).parameters.items()
        if param.default is inspect.Parameter.empty and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    ]
    if required:
        pytest.skip(f"SyntheticCorpus needs {required}")
    assert isinstance(open_corpus("synthetic"), SyntheticCorpus)
