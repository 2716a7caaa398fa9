"""Caption text: tokenize(), Vocabulary, and the pycocoevalcap metric wrapper."""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snapcap.caption import metrics
from snapcap.caption.metrics import MetricReport, caption_metrics, java_status
from snapcap.caption.text import Vocabulary, tokenize
from snapcap.errors import BackendUnavailableError, ConfigError, DataFileError, InvalidValueError, ShapeError, SnapcapError

JAVA, JAVA_WHY = java_status()
needs_java = pytest.mark.skipif(not JAVA, reason=f"Java does not run here: {JAVA_WHY}")

# -- tokenize -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caption", "tokens"),
    [
        ("A man's car, red.", ["a", "man", "'s", "car", "red"]),
        ("He doesn't know; I can't go -- cannot.", ["he", "does", "n't", "know", "i", "ca", "n't", "go", "can", "not"]),
        ("3.5 kg of rice... 'single' `tick`", ["3.5", "kg", "of", "rice", "single", "tick"]),
        ("Mr. Smith's dogs' bones", ["mr.", "smith", "'s", "dogs", "bones"]),
        ("I'm you're we'll they'd", ["i", "'m", "you", "'re", "we", "'ll", "they", "'d"]),
        ("gonna e-mail a/b at 10:30 for $5 (50%)", ["gon", "na", "e-mail", "a/b", "at", "10:30", "for", "$", "5", "50", "%"]),
        ("A well-known U.S. city, 1,000 people", ["a", "well-known", "u.s.", "city", "1,000", "people"]),
        ("Hello!! What? \u201cQuoted\u201d \u2014 it\u2019s fine\u2026", ["hello", "what", "quoted", "it", "'s", "fine"]),
        ("  A\tB\nc  ", ["a", "b", "c"]),
        ("", []),
        ("... !", []),
    ],
)
def test_tokenize_examples(caption, tokens):
    assert tokenize(caption) == tokens


def test_tokenize_rejects_non_strings():
    with pytest.raises(InvalidValueError, match="string"):
        tokenize(None)  # type: ignore[arg-type]


@needs_java
def test_tokenize_agrees_with_the_java_ptb_tokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = [
        "A man's car, red.",
        "He doesn't know; I can't go -- cannot.",
        "3.5 kg of rice... 'single' `tick`",
        "Mr. Smith's dogs' bones",
        "I'm you're we'll they'd",
        "gonna wanna e-mail a/b 10:30 $5 50% it's",
        "A woman is slicing an onion, then she adds it to the pan.",
        "Two kids play soccer on a field; one of them falls down!",
        "The U.S. flag waves in the wind",
    ]
    java = PTBTokenizer().tokenize({index: [{"caption": caption}] for index, caption in enumerate(captions)})
    for index, caption in enumerate(captions):
        assert " ".join(tokenize(caption)) == java[index][0], caption


# -- Vocabulary ---------------------------------------------------------------------------------

TRAIN = [
    "A man is playing a guitar.",
    "A man plays the guitar!",
    "A woman is cooking.",
    "The dog runs.",
]


def test_vocabulary_build_orders_by_count_then_alphabet():
    vocab = Vocabulary.build(TRAIN)
    assert vocab.tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (vocab.PAD, vocab.BOS, vocab.EOS, vocab.UNK) == (0, 1, 2, 3)
    # a: 4, guitar/is/man/the: 2 (alphabetical), then the words seen once, alphabetical
    assert vocab.tokens[4:9] == ["a", "guitar", "is", "man", "the"]
    assert vocab.tokens[9:] == sorted(["cooking", "dog", "playing", "plays", "runs", "woman"])
    assert len(vocab) == 4 + 11
    assert vocab.counts["a"] == 4 and vocab.counts["dog"] == 1
    assert Vocabulary.build(list(reversed(TRAIN))) == vocab  # deterministic


def test_vocabulary_min_count_max_size_and_unknown_words():
    vocab = Vocabulary.build(TRAIN, min_count=2)
    assert vocab.tokens[4:] == ["a", "guitar", "is", "man", "the"]
    assert "guitar" in vocab and "dog" not in vocab and 5 not in vocab
    assert vocab.token_to_id("dog") == Vocabulary.UNK
    assert vocab.token_to_id("a") == 4 and vocab.id_to_token(4) == "a"
    assert Vocabulary.build(TRAIN, max_size=2).tokens[4:] == ["a", "guitar"]
    assert len(Vocabulary.build(TRAIN, max_size=0)) == 4
    with pytest.raises(InvalidValueError, match="min_count"):
        Vocabulary.build(TRAIN, min_count=0)
    with pytest.raises(InvalidValueError, match="max_size"):
        Vocabulary.build(TRAIN, max_size=-1)
    with pytest.raises(InvalidValueError, match="one string"):
        Vocabulary.build("a man")
    with pytest.raises(InvalidValueError, match=r"captions\[1\]"):
        Vocabulary.build(["a man", None])  # type: ignore[list-item]
    with pytest.raises(InvalidValueError, match="token id"):
        vocab.id_to_token(len(vocab))
    with pytest.raises(InvalidValueError, match="special token"):
        Vocabulary(["<eos>"])
    with pytest.raises(InvalidValueError, match="repeated"):
        Vocabulary(["a", "a"])


def test_encode_decode_round_trip_and_unknown_words():
    vocab = Vocabulary.build(TRAIN)
    ids = vocab.encode("A man is playing a guitar.")
    assert ids[0] == vocab.BOS and ids[-1] == vocab.EOS and len(ids) == 8
    assert vocab.decode(ids) == "a man is playing a guitar"
    assert vocab.decode(torch.tensor(ids)) == "a man is playing a guitar"
    assert vocab.decode(np.array(ids)) == "a man is playing a guitar"
    unknown = vocab.encode("A cat is playing")
    assert unknown[2] == vocab.UNK
    assert vocab.decode(unknown) == "a <unk> is playing"
    assert vocab.encode(["a", "<pad>", "man"]) == [vocab.BOS, 4, vocab.UNK, vocab.token_to_id("man"), vocab.EOS]
    # stops at EOS, skips PAD and BOS
    assert vocab.decode([vocab.BOS, 4, vocab.PAD, 7, vocab.EOS, 5, 6]) == "a man"
    assert vocab.decode([]) == ""
    with pytest.raises(InvalidValueError, match="token id"):
        vocab.decode([1, 999])
    with pytest.raises(ShapeError, match="1-D"):
        vocab.decode(torch.zeros(2, 3, dtype=torch.long))


def test_encode_truncates_but_keeps_eos():
    vocab = Vocabulary.build(TRAIN)
    ids = vocab.encode("a man is playing a guitar", max_length=5)
    assert len(ids) == 5 and ids[-1] == vocab.EOS
    assert vocab.decode(ids) == "a man is"
    assert vocab.encode("a man", max_length=2) == [vocab.BOS, vocab.EOS]
    with pytest.raises(InvalidValueError, match="max_length"):
        vocab.encode("a man", max_length=1)


def test_encode_batch_pads_to_the_longest():
    vocab = Vocabulary.build(TRAIN)
    batch = vocab.encode_batch(["a man", "the dog runs", ""], max_length=30)
    assert batch.dtype == torch.long and batch.shape == (3, 5)
    assert batch[0].tolist() == [vocab.BOS, 4, vocab.token_to_id("man"), vocab.EOS, vocab.PAD]
    assert batch[2].tolist() == [vocab.BOS, vocab.EOS, vocab.PAD, vocab.PAD, vocab.PAD]
    assert vocab.decode_batch(batch) == ["a man", "the dog runs", ""]
    short = vocab.encode_batch(["a man is playing a guitar", "a"], max_length=4)
    assert short.shape == (2, 4) and short[0, -1].item() == vocab.EOS and short[1].tolist() == [1, 4, 2, 0]
    with pytest.raises(InvalidValueError, match="at least one"):
        vocab.encode_batch([])


def test_vocabulary_save_load_round_trip(tmp_path: Path):
    vocab = Vocabulary.build(TRAIN + ["Un café, s'il vous plaît"], min_count=1)
    path = vocab.save(tmp_path / "sub" / "vocab.json")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temporary file left
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.tokens == vocab.tokens and loaded.counts == vocab.counts
    assert Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    ids = vocab.encode("A woman is cooking a café")
    assert loaded.encode("A woman is cooking a café") == ids


def test_vocabulary_load_errors_name_the_file(tmp_path: Path):
    missing = tmp_path / "missing.json"
    with pytest.raises(DataFileError, match="missing.json"):
        Vocabulary.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataFileError, match="broken.json"):
        Vocabulary.load(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DataFileError, match="other.json.*not a snapcap vocabulary"):
        Vocabulary.load(other)
    doubled = tmp_path / "doubled.json"
    data = Vocabulary.build(TRAIN).to_dict()
    data["words"] = ["a", "a"]
    data["counts"] = None
    doubled.write_text(json.dumps(data))
    with pytest.raises(DataFileError, match="doubled.json.*repeated"):
        Vocabulary.load(doubled)


# -- caption metrics ----------------------------------------------------------------------------

TOY_PREDICTION = "The the THE cat sat."
TOY_REFERENCES = ["the cat sat on the mat", "a cat was sitting on a mat"]


def _toy_bleu_by_hand() -> list[float]:
    """BLEU-1..4 (percent) of 'the the the cat sat' against the two toy references.

    n-grams of the prediction (5 tokens): 5 unigrams, 4 bigrams, 3 trigrams, 2 4-grams.
    Clipped matches: unigrams the x3 clipped to 2 (the most in one reference) + cat + sat = 4;
    bigrams 'the cat', 'cat sat' = 2; trigram 'the cat sat' = 1; no 4-gram.
    Reference lengths 6 and 7: the closest to 5 is 6, brevity penalty exp(1 - 6/5).
    pycocoevalcap adds tiny = 1e-15 to matches and small = 1e-9 to counts and lengths, which
    keeps BLEU-4 a hair above 0.
    """
    tiny, small = 1e-15, 1e-9
    matches, counts = [4, 2, 1, 0], [5, 4, 3, 2]
    ratio = (5 + tiny) / (6 + small)
    penalty = math.exp(1 - 1 / ratio)
    product, scores = 1.0, []
    for order in range(4):
        product *= (matches[order] + tiny) / (counts[order] + small)
        scores.append(100 * product ** (1 / (order + 1)) * penalty)
    return scores


@pytest.mark.parametrize("tokenizer", ["regex", pytest.param("ptb", marks=needs_java)])
def test_bleu_agrees_with_a_hand_computation(tokenizer):
    report = caption_metrics({"v": TOY_PREDICTION}, {"v": TOY_REFERENCES}, metrics=("BLEU",), tokenizer=tokenizer)
    expected = _toy_bleu_by_hand()
    assert list(report.scores) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"]
    for order, value in enumerate(expected):
        assert report.scores[f"BLEU-{order + 1}"] == pytest.approx(value, abs=1e-6)
    # the textbook values without the smoothing constants
    assert report.scores["BLEU-1"] == pytest.approx(100 * 0.8 * math.exp(-0.2), abs=1e-6)
    assert report.scores["BLEU-2"] == pytest.approx(100 * math.sqrt(0.8 * 0.5) * math.exp(-0.2), abs=1e-6)
    assert 0 < report.scores["BLEU-4"] < 1e-2
    assert report.tokenizer == tokenizer and report.videos == 1


def test_identical_captions_give_bleu4_100_and_positive_cider():
    captions = {
        "v1": "a man is playing a guitar on the stage",
        "v2": "a woman slices an onion in the kitchen",
        "v3": "two dogs run across the snowy field",
    }
    report = caption_metrics(captions, {key: [value] for key, value in captions.items()}, metrics=("BLEU", "ROUGE-L", "CIDEr"))
    assert report.scores["BLEU-4"] == pytest.approx(100.0, abs=1e-6)
    assert report.scores["BLEU-1"] == pytest.approx(100.0, abs=1e-6)
    assert report.scores["ROUGE-L"] == pytest.approx(100.0)
    assert report.scores["CIDEr"] > 0
    assert set(report.per_video) == set(captions) and all(row["CIDEr"] > 0 for row in report.per_video.values())


def test_empty_predictions_score_zero_and_extra_references_are_left_out():
    predictions = {"v1": "a man is playing a guitar", "v2": ""}
    references = {"v1": ["a man is playing a guitar"], "v2": ["a cat sleeps on a sofa"], "v3": ["unused"]}
    report = caption_metrics(predictions, references, metrics=("BLEU", "ROUGE-L", "CIDEr"), tokenizer="regex")
    assert report.per_video["v2"] == {name: 0.0 for name in report.per_video["v2"]}
    assert report.per_video["v1"]["ROUGE-L"] == pytest.approx(100.0)
    assert any("1 reference video" in note for note in report.notes)
    assert "METEOR" not in report.scores


def test_meteor_is_none_with_a_note_without_java(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    ok, why = java_status()
    assert not ok and "not found" in why
    report = caption_metrics({"v": TOY_PREDICTION}, {"v": TOY_REFERENCES}, metrics=("BLEU", "METEOR", "CIDEr"))
    assert report.scores["METEOR"] is None
    assert report.tokenizer == "regex"
    assert any(note.startswith("METEOR not computed") and "java" in note.lower() for note in report.notes)
    assert any("regex tokenizer" in note for note in report.notes)
    assert report.scores["BLEU-1"] == pytest.approx(_toy_bleu_by_hand()[0], abs=1e-6)
    assert "n/a" in report.to_markdown()
    with pytest.raises(BackendUnavailableError, match="Java"):
        caption_metrics({"v": "a"}, {"v": ["a"]}, metrics=("BLEU",), tokenizer="ptb")


def test_meteor_failure_is_reported_not_raised(monkeypatch):
    import pycocoevalcap.meteor.meteor as meteor_module

    class BrokenMeteor:
        def compute_score(self, gts, res):
            raise ValueError("could not convert string to float: ''")

    monkeypatch.setattr(metrics, "java_status", lambda *args, **kwargs: (True, "java (pretend)"))
    monkeypatch.setattr(meteor_module, "Meteor", BrokenMeteor)
    report = caption_metrics({"v": "a cat"}, {"v": ["a cat sits"]}, tokenizer="regex")
    assert report.scores["METEOR"] is None
    assert any("METEOR Java process failed" in note for note in report.notes)
    assert report.scores["BLEU-1"] is not None


def test_ptb_failure_falls_back_to_the_regex_tokenizer(monkeypatch):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    def refuse(self, captions):
        raise PermissionError(13, "Permission denied", "/site-packages/pycocoevalcap/tokenizer/tmpxyz")

    monkeypatch.setattr(metrics, "java_status", lambda *args, **kwargs: (True, "java (pretend)"))
    monkeypatch.setattr(PTBTokenizer, "tokenize", refuse)
    report = caption_metrics({"v": TOY_PREDICTION}, {"v": TOY_REFERENCES}, metrics=("BLEU",))
    assert report.tokenizer == "regex"
    assert any("PTB tokenizer failed" in note and "Permission denied" in note for note in report.notes)
    assert report.scores["BLEU-2"] == pytest.approx(_toy_bleu_by_hand()[1], abs=1e-6)
    with pytest.raises(BackendUnavailableError, match="PTB tokenizer failed"):
        caption_metrics({"v": TOY_PREDICTION}, {"v": TOY_REFERENCES}, metrics=("BLEU",), tokenizer="ptb")


def _child_pids() -> set[int]:
    me, children = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                children.add(int(entry))
    return children


@needs_java
def test_all_metrics_with_java_and_no_leaked_process():
    predictions = {"v1": "A man plays a guitar.", "v2": "", "v3": "a dog runs in the park"}
    references = {
        "v1": ["a man is playing a guitar", "someone plays the guitar"],
        "v2": ["a cat sleeps"],
        "v3": ["a dog runs in the park", "a dog is running"],
    }
    before = _child_pids() if os.path.isdir("/proc") else set()
    report = caption_metrics(predictions, references)
    gc.collect()
    assert list(report.scores) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
    assert report.tokenizer == "ptb" and report.notes == []
    assert report.scores["METEOR"] is not None and 0 < report.scores["METEOR"] <= 100
    assert all(value is not None and value >= 0 for value in report.scores.values())
    assert report.per_video["v2"]["METEOR"] == 0.0
    assert report.per_video["v3"]["METEOR"] > report.per_video["v1"]["METEOR"] > 0
    if os.path.isdir("/proc"):
        assert _child_pids() - before == set()
    row = report.as_row()
    assert row["videos"] == 3 and row["tokenizer"] == "ptb" and row["METEOR"] == report.scores["METEOR"]


def test_java_status_reports_a_reason():
    ok, why = java_status()
    assert isinstance(ok, bool) and isinstance(why, str) and why
    if shutil.which("java"):
        assert ok, why  # java on PATH here runs
        assert "java" in why.lower()


def test_metric_input_errors():
    refs = {"v1": ["a cat"], "v2": ["a dog"]}
    with pytest.raises(InvalidValueError, match="no references.*'v3'"):
        caption_metrics({"v1": "a cat", "v3": "a bird"}, refs, metrics=("BLEU",))
    with pytest.raises(InvalidValueError, match="at least one video"):
        caption_metrics({}, refs)
    with pytest.raises(InvalidValueError, match="strings.*'v1'"):
        caption_metrics({"v1": None}, refs)  # type: ignore[dict-item]
    with pytest.raises(InvalidValueError, match="non-empty lists.*'v1'"):
        caption_metrics({"v1": "a cat"}, {"v1": "a cat"})  # type: ignore[dict-item]
    with pytest.raises(InvalidValueError, match="non-empty lists.*'v1'"):
        caption_metrics({"v1": "a cat"}, {"v1": []})
    with pytest.raises(InvalidValueError, match="blank.*'v1'"):
        caption_metrics({"v1": "a cat"}, {"v1": ["  "]})
    with pytest.raises(ConfigError, match="SPICE.*downloads"):
        caption_metrics({"v1": "a cat"}, refs, metrics=("BLEU", "SPICE"))
    with pytest.raises(ConfigError, match="unknown caption metric"):
        caption_metrics({"v1": "a cat"}, refs, metrics=("WER",))
    with pytest.raises(ConfigError, match="tokenizer"):
        caption_metrics({"v1": "a cat"}, refs, tokenizer="spacy")
    assert issubclass(InvalidValueError, SnapcapError)


def test_metric_names_are_forgiving_and_report_renders():
    predictions, references = {"v1": "a cat", "v2": "a dog"}, {"v1": ["a cat"], "v2": ["a dog"]}
    report = caption_metrics(predictions, references, metrics=("rouge_l", "cider", "CIDEr"), tokenizer="regex")
    assert list(report.scores) == ["ROUGE-L", "CIDEr"]
    assert metrics.metric_names(("rouge_l", "cider", "CIDEr")) == ["ROUGE-L", "CIDEr"]
    assert metrics.metric_names("Cider-D") == ["CIDEr"]
    markdown = report.to_markdown()
    assert markdown.splitlines()[0] == "| ROUGE-L | CIDEr |"
    assert "100.00" in markdown and "2 videos" in markdown
    assert isinstance(report, MetricReport) and report.as_row()["ROUGE-L"] == pytest.approx(100.0)
