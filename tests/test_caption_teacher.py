"""The CLIP teacher: tiny random open_clip ViTs, conv1 / tail consistency, snapshot targets, checkpoints.

Nothing here downloads anything: models are randomly initialised from snapcap's tiny configs and
checkpoints are files the tests write.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import time

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")

from snapcap.caption.teacher import ClipTeacher, ViTTail, list_teacher_models, snapcap_model_names
from snapcap.errors import ConfigError, DataFileError, DTypeError, ShapeError, SnapcapError

ATOL = 1e-5


@pytest.fixture(scope="module")
def teacher() -> ClipTeacher:
    torch.manual_seed(0)
    return ClipTeacher.create("snapcap-tiny-vit")


def frames(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.random(shape, dtype=np.float32)


def tiny_clip(seed: int, name: str = "snapcap-tiny-vit"):
    import open_clip

    ClipTeacher.create(name)  # registers snapcap's configs with open_clip
    torch.manual_seed(seed)
    return open_clip.create_model(name).eval()


# --- configs and creation --------------------------------------------------------------------


def test_shipped_configs_are_listed_and_create():
    assert {"snapcap-tiny-vit", "snapcap-small-vit"} <= set(snapcap_model_names())
    names = list_teacher_models()
    assert names[:2] == snapcap_model_names()[:2]
    assert "ViT-B-16" in names
    assert not any(name.startswith("RN") for name in names)  # ResNet towers have no conv1 patch embedding
    assert list_teacher_models(include_open_clip=False) == snapcap_model_names()

    small = ClipTeacher.create("snapcap-small-vit")
    assert (small.image_size, small.patch_size, small.conv_channels, small.grid, small.embed_dim) == (112, 16, 192, (7, 7), 128)
    out = small.encode(np.zeros((2, 112, 112), np.float32))
    assert out.shape == (2, 128)


def test_tiny_sizes_frozen_eval_and_visual_only(teacher):
    assert (teacher.image_size, teacher.patch_size, teacher.conv_channels, teacher.grid, teacher.embed_dim) == (
        64,
        8,
        64,
        (8, 8),
        32,
    )
    assert teacher.frozen and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(key.startswith("visual.") for key, _ in teacher.named_parameters())  # text tower dropped
    assert not any("token_embedding" in key or "text" in key for key in teacher.state_dict())
    assert "snapcap-tiny-vit" in repr(teacher)


def test_frozen_teacher_stays_in_eval_mode_and_unfreezes():
    teacher = ClipTeacher.create("snapcap-tiny-vit")
    parent = torch.nn.Sequential(teacher, torch.nn.Linear(32, 2))
    parent.train()
    assert parent[1].training and not teacher.training and not teacher.visual.training
    teacher.unfreeze()
    assert not teacher.frozen and all(p.requires_grad for p in teacher.parameters())
    parent.train()
    assert teacher.training
    teacher.encode(np.random.default_rng(0).random((2, 64, 64), dtype=np.float32)).sum().backward()
    assert teacher.visual.conv1.weight.grad is not None
    teacher.freeze()
    assert teacher.frozen and not teacher.training


# --- preprocessing and shapes ----------------------------------------------------------------


def test_preprocess_gray_replicates_and_matches_rgb(teacher, rng):
    gray = frames(rng, 2, 3, 40, 50)
    x = teacher.preprocess(gray)
    assert x.shape == (6, 3, 64, 64) and x.dtype == torch.float32
    raw = x * teacher.pixel_std + teacher.pixel_mean
    torch.testing.assert_close(raw[:, 0], raw[:, 1], atol=ATOL, rtol=0)
    torch.testing.assert_close(raw[:, 0], raw[:, 2], atol=ATOL, rtol=0)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    torch.testing.assert_close(teacher.preprocess(rgb), x, atol=ATOL, rtol=0)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(gray.reshape(6, 1, 40, 50)), size=(64, 64), mode="bilinear", antialias=True, align_corners=False
    )
    torch.testing.assert_close(raw[:, :1], expected, atol=ATOL, rtol=0)


def test_preprocess_native_size_uint8_and_crop(teacher, rng):
    image = frames(rng, 64, 64, 3)
    x = teacher.preprocess(image)
    torch.testing.assert_close(
        x * teacher.pixel_std + teacher.pixel_mean, torch.from_numpy(image).permute(2, 0, 1)[None], atol=ATOL, rtol=0
    )
    as_uint8 = (rng.random((5, 64, 64)) * 255).astype(np.uint8)
    torch.testing.assert_close(teacher.preprocess(as_uint8), teacher.preprocess(as_uint8 / 255.0), atol=ATOL, rtol=0)
    wide = frames(rng, 64, 128)
    cropped = teacher.preprocess(wide, fit="crop")
    torch.testing.assert_close(cropped, teacher.preprocess(wide[:, 32:96]), atol=ATOL, rtol=0)
    assert teacher.preprocess(frames(rng, 0, 64, 64)).shape == (0, 3, 64, 64)


@pytest.mark.parametrize("shape", [(64, 64), (5, 48, 48), (2, 3, 40, 56), (64, 64, 3), (2, 3, 48, 40, 3), (1, 2, 3, 32, 32, 3)])
def test_encode_and_conv1_shapes(teacher, rng, shape):
    x = frames(rng, *shape)
    lead = shape[:-3] if shape[-1] == 3 else shape[:-2]
    assert teacher.encode(x).shape == lead + (32,)
    assert teacher.conv1_features(x).shape == lead + (64, 8, 8)
    assert teacher.encode(torch.from_numpy(x)).shape == lead + (32,)


def test_encode_chunking_normalize_and_torch_input(teacher, rng):
    x = frames(rng, 7, 64, 64)
    whole = teacher.encode(x)
    torch.testing.assert_close(teacher.encode(x, chunk_size=3), whole, atol=ATOL, rtol=0)
    torch.testing.assert_close(teacher.encode(torch.from_numpy(x).double()), whole, atol=ATOL, rtol=0)
    unit = teacher.encode(x, normalize=True)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(7), atol=ATOL, rtol=0)
    torch.testing.assert_close(unit, whole / whole.norm(dim=-1, keepdim=True), atol=ATOL, rtol=0)
    assert not torch.allclose(whole.norm(dim=-1), torch.ones(7))  # raw embeddings by default


def test_encode_matches_open_clip_encode_image(teacher, rng):
    import open_clip

    model = open_clip.create_model("snapcap-tiny-vit").eval()
    model.visual.load_state_dict(teacher.visual.state_dict())
    x = frames(rng, 3, 64, 64, 3)
    with torch.no_grad():
        expected = model.encode_image(teacher.preprocess(x))
    torch.testing.assert_close(teacher.encode(x), expected, atol=ATOL, rtol=0)


def test_bad_frames(teacher, rng):
    with pytest.raises(ShapeError):
        teacher.encode(np.zeros(5, np.float32))
    with pytest.raises(ShapeError):
        teacher.encode(np.zeros((4, 4), np.float32), rgb=True)
    with pytest.raises(DTypeError):
        teacher.encode(np.zeros((2, 8, 8), np.int32))
    with pytest.raises(ConfigError):
        teacher.encode(frames(rng, 8, 8), fit="squash")
    with pytest.raises(ConfigError):
        teacher.encode(frames(rng, 8, 8), chunk_size=0)
    with pytest.raises(ShapeError):
        teacher.from_conv1(torch.zeros(2, 64, 7, 7))
    with pytest.raises(ShapeError):
        teacher.snapshot_targets(frames(rng, 2, 3, 8, 8))


# --- conv1, the tail and its copy ------------------------------------------------------------


def test_from_conv1_of_conv1_features_equals_encode(teacher, rng):
    for x in (frames(rng, 2, 3, 50, 60), frames(rng, 4, 64, 64, 3)):
        torch.testing.assert_close(teacher.from_conv1(teacher.conv1_features(x)), teacher.encode(x), atol=ATOL, rtol=0)
    conv = teacher.conv1_features(frames(rng, 3, 64, 64))
    unit = torch.nn.functional.normalize(teacher.from_conv1(conv), dim=-1)
    torch.testing.assert_close(teacher.from_conv1(conv.numpy(), normalize=True), unit, atol=ATOL, rtol=0)
    assert teacher.from_conv1(conv[None, :2]).shape == (1, 2, 32)


def test_conv1_features_are_the_patch_embedding(teacher, rng):
    x = frames(rng, 2, 64, 64)
    conv = teacher.conv1_features(x)
    with torch.no_grad():
        expected = torch.nn.functional.conv2d(teacher.preprocess(x), teacher.visual.conv1.weight, stride=8)
    torch.testing.assert_close(conv, expected, atol=ATOL, rtol=0)


def test_copy_vit_tail_matches_and_is_independent(teacher, rng):
    x = frames(rng, 4, 64, 64)
    conv = teacher.conv1_features(x)
    expected = teacher.encode(x)
    tail = teacher.copy_vit_tail()
    assert isinstance(tail, ViTTail) and tail.training
    assert (tail.in_channels, tail.grid, tail.embed_dim) == (64, (8, 8), 32)
    assert all(p.requires_grad for p in tail.parameters())
    assert not any("conv1" in key for key in tail.state_dict())
    torch.testing.assert_close(tail(conv), expected, atol=ATOL, rtol=0)
    tail.eval()
    torch.testing.assert_close(tail(conv), expected, atol=ATOL, rtol=0)

    teacher_ptrs = {p.data_ptr() for p in teacher.parameters()}
    assert not teacher_ptrs & {p.data_ptr() for p in tail.parameters()}
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    tail(conv).square().sum().backward()
    assert tail.vit.proj.grad is not None and teacher.visual.proj.grad is None
    with torch.no_grad():
        for p in tail.parameters():
            p.add_(1.0)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    torch.testing.assert_close(teacher.encode(x), expected, atol=0, rtol=0)
    assert not torch.allclose(tail(conv), expected, atol=1e-3)
    with pytest.raises(ShapeError):
        tail(conv[..., :4, :4])


# --- snapshot targets ------------------------------------------------------------------------


@pytest.mark.parametrize("rgb", [False, True])
def test_snapshot_targets_are_per_snapshot_means(teacher, rng, rgb):
    shape = (2, 3, 4, 40, 40) + ((3,) if rgb else ())
    x = frames(rng, *shape)
    f_conv, f = teacher.snapshot_targets(x, chunk_size=5)  # chunks of one snapshot (4 frames)
    assert f_conv.shape == (2, 3, 64, 8, 8) and f.shape == (2, 3, 32)
    assert not f_conv.requires_grad and not f.requires_grad
    torch.testing.assert_close(f_conv, teacher.conv1_features(x).mean(dim=2), atol=ATOL, rtol=0)
    torch.testing.assert_close(f, teacher.encode(x).mean(dim=2), atol=ATOL, rtol=0)
    f_conv_all, f_all = teacher.snapshot_targets(torch.from_numpy(x), chunk_size=1000)
    torch.testing.assert_close(f_conv_all, f_conv, atol=ATOL, rtol=0)
    torch.testing.assert_close(f_all, f, atol=ATOL, rtol=0)


def test_snapshot_targets_no_grad_even_when_unfrozen(rng):
    teacher = ClipTeacher.create("snapcap-tiny-vit", frozen=False)
    assert not teacher.frozen and not teacher.training
    f_conv, f = teacher.snapshot_targets(frames(rng, 1, 2, 3, 64, 64))
    assert not f_conv.requires_grad and not f.requires_grad
    empty_conv, empty = teacher.snapshot_targets(frames(rng, 0, 2, 3, 64, 64))
    assert empty_conv.shape == (0, 2, 64, 8, 8) and empty.shape == (0, 2, 32)


# --- checkpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["whole", "visual", "wrapped", "captioner"])
def test_checkpoint_round_trip(tmp_path, rng, kind):
    model = tiny_clip(seed=7)
    if kind == "whole":
        state = model.state_dict()
    elif kind == "visual":
        state = model.visual.state_dict()
    elif kind == "wrapped":
        state = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    else:  # a saved captioner holding the teacher and other modules
        state = {
            "kind": "snapcap-captioner",
            "state": {
                **{f"teacher.visual.{k}": v for k, v in model.visual.state_dict().items()},
                "proj.0.weight": torch.zeros(4, 32),
            },
        }
    path = tmp_path / "clip.pt"
    torch.save(state, path)
    torch.manual_seed(123)  # a different random init, overwritten by the checkpoint
    teacher = ClipTeacher.create("snapcap-tiny-vit", checkpoint=path)
    assert teacher.frozen
    x = frames(rng, 3, 64, 64, 3)
    with torch.no_grad():
        expected = model.encode_image(teacher.preprocess(x))
    torch.testing.assert_close(teacher.encode(x), expected, atol=0, rtol=0)
    for key, value in model.visual.state_dict().items():
        assert torch.equal(teacher.visual.state_dict()[key], value), key


def test_checkpoint_safetensors_and_teacher_state(tmp_path, rng):
    safetensors = pytest.importorskip("safetensors.torch")
    model = tiny_clip(seed=3)
    path = tmp_path / "visual.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in model.visual.state_dict().items()}, str(path))
    teacher = ClipTeacher.create("snapcap-tiny-vit", checkpoint=path)
    again = tmp_path / "teacher.pt"
    torch.save(teacher.state_dict(), again)  # a teacher's own state dict ("visual." keys)
    reloaded = ClipTeacher.create("snapcap-tiny-vit", checkpoint=again)
    x = frames(rng, 2, 64, 64)
    torch.testing.assert_close(reloaded.encode(x), teacher.encode(x), atol=0, rtol=0)


def test_checkpoint_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        ClipTeacher.create("snapcap-tiny-vit", checkpoint=tmp_path / "nope.pt")


def test_checkpoint_wrong_shapes_names_keys(tmp_path):
    path = tmp_path / "small.pt"
    torch.save(tiny_clip(seed=0, name="snapcap-small-vit").state_dict(), path)
    with pytest.raises(DataFileError) as info:
        ClipTeacher.create("snapcap-tiny-vit", checkpoint=path)
    message = str(info.value)
    assert "conv1.weight" in message and "class_embedding" in message and "wrong shapes" in message
    assert "unexpected keys" in message and "transformer.resblocks.2" in message  # 4 layers in a 2-layer tower


def test_checkpoint_missing_keys_and_garbage(tmp_path):
    state = tiny_clip(seed=0).visual.state_dict()
    del state["ln_post.weight"]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(DataFileError, match="missing keys: ln_post.weight"):
        ClipTeacher.create("snapcap-tiny-vit", checkpoint=path)
    text_only = tmp_path / "text.pt"
    torch.save({k: v for k, v in tiny_clip(seed=0).state_dict().items() if not k.startswith("visual.")}, text_only)
    with pytest.raises(DataFileError, match="no ViT image tower"):
        ClipTeacher.create("snapcap-tiny-vit", checkpoint=text_only)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataFileError, match="cannot read"):
        ClipTeacher.create("snapcap-tiny-vit", checkpoint=junk)


def test_pretrained_file_path_loads_whole_checkpoint(tmp_path, rng):
    model = tiny_clip(seed=11)
    path = tmp_path / "whole.pt"
    torch.save(model.state_dict(), path)
    teacher = ClipTeacher.create("snapcap-tiny-vit", pretrained=str(path))
    x = frames(rng, 2, 64, 64, 3)
    with torch.no_grad():
        expected = model.encode_image(teacher.preprocess(x))
    torch.testing.assert_close(teacher.encode(x), expected, atol=0, rtol=0)
    bad = tmp_path / "bad.pt"
    torch.save(tiny_clip(seed=0, name="snapcap-small-vit").state_dict(), bad)
    with pytest.raises(DataFileError):
        ClipTeacher.create("snapcap-tiny-vit", pretrained=str(bad))


# --- errors ----------------------------------------------------------------------------------


def test_unknown_model_name_lists_known():
    with pytest.raises(ConfigError) as info:
        ClipTeacher.create("snapcap-tiny-vti")
    message = str(info.value)
    assert "snapcap-tiny-vti" in message and "snapcap-tiny-vit" in message and "Known ViT models" in message


def test_non_vit_tower_is_refused():
    with pytest.raises(ConfigError, match="ResNet"):
        ClipTeacher.create("RN50")


def test_pretrained_tag_unknown_for_tiny_config_fails_fast():
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="no published weights"):
        ClipTeacher.create("snapcap-tiny-vit", pretrained="openai")
    with pytest.raises(ConfigError, match="its tags: .*openai"):
        ClipTeacher.create("ViT-B-16", pretrained="no-such-tag")
    assert time.perf_counter() - start < 10


def test_uncached_pretrained_weights_fail_fast_without_download(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataFileError, match="not in the local cache") as info:
        ClipTeacher.create("ViT-B-16", pretrained="openai", cache_dir=tmp_path)
    assert isinstance(info.value, SnapcapError)
    assert "allow_download=True" in str(info.value)
    assert time.perf_counter() - start < 10
    assert not any(tmp_path.iterdir())  # nothing fetched


def test_hf_hub_and_local_dir_names(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ConfigError, match="allow_download"):
        ClipTeacher.create("hf-hub:someone/some-clip")
    with pytest.raises(DataFileError, match="open_clip_config.json"):
        ClipTeacher.create(f"local-dir:{tmp_path}")
    with pytest.raises(ConfigError, match="pretrained= is not used"):
        ClipTeacher.create(f"local-dir:{tmp_path}", pretrained="openai")


# --- the paper's teacher ---------------------------------------------------------------------


@pytest.mark.slow
def test_vit_b16_random_init_has_the_paper_sizes():
    teacher = ClipTeacher.create("ViT-B-16", pretrained=None)
    assert (teacher.image_size, teacher.patch_size, teacher.conv_channels, teacher.grid, teacher.embed_dim) == (
        224,
        16,
        768,
        (14, 14),
        512,
    )
    x = np.random.default_rng(0).random((1, 2, 224, 224, 3), dtype=np.float32)
    conv = teacher.conv1_features(x)
    assert conv.shape == (1, 2, 768, 14, 14)
    emb = teacher.encode(x)
    assert emb.shape == (1, 2, 512)
    torch.testing.assert_close(teacher.from_conv1(conv), emb, atol=1e-4, rtol=1e-4)
    f_conv, f = teacher.snapshot_targets(x[:, None])
    assert f_conv.shape == (1, 1, 768, 14, 14) and f.shape == (1, 1, 512)


def test_the_shortcut_fit_streams_its_normal_equations():
    """fit_shortcut over chunks equals the closed-form ridge regression on the whole set, and
    its reported MSE is the residual's (no chunk kept once its normal equations are added)."""
    from snapcap.caption.student import SnapCapStudent, StudentConfig

    config = StudentConfig(B=4, image_size=32, widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1), token_dim=16, shortcut=True)
    student = SnapCapStudent(config, 6, (4, 4), torch.nn.Identity(), 6)
    generator = torch.Generator().manual_seed(0)
    ybar = torch.rand(10, 32, 32, generator=generator)
    truth = torch.nn.Conv2d(1, 6, 8, stride=8)
    with torch.no_grad():
        targets = truth(ybar.unsqueeze(1)) + 0.01 * torch.randn(10, 6, 4, 4, generator=generator)
    with torch.no_grad():
        mse = student.fit_shortcut(((ybar[i : i + 3], targets[i : i + 3]) for i in range(0, 10, 3)), ridge=0.0)
        fitted = student.patch(ybar.unsqueeze(1))
    assert mse == pytest.approx(float(((fitted.double() - targets.double()) ** 2).mean()), rel=1e-4)
    torch.testing.assert_close(student.patch.weight, truth.weight, atol=0.02, rtol=0)  # noise 0.01: near the truth
    with torch.no_grad():
        whole = SnapCapStudent(config, 6, (4, 4), torch.nn.Identity(), 6)
        whole.fit_shortcut([(ybar, targets)], ridge=0.0)
    torch.testing.assert_close(whole.patch.weight, student.patch.weight, atol=1e-5, rtol=0)
