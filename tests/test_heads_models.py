"""Heads: every registered head learns on generated tokens and reloads to identical outputs."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import torch
from support_toydata import TOY_CLASSES, TOY_DIM, TOY_MOTIONS, toy_clip, toy_frame

from regiond.heads.batch import collate, frames_origin, join_frames, limit_tokens, tokens_from_regions
from regiond.heads.predict import chunk_workers, token_probs
from regiond.heads.registry import create_head, list_heads, load_head, save_head
from regiond.heads.training import ActivityTask, area_weighted_ce

SMALL = {"dim": 32, "heads": 4}
CLASS_INDEX = {c: k for k, c in enumerate(TOY_CLASSES)}


def _segment_samples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [tokens_from_regions([toy_frame(rng)[0]], CLASS_INDEX) for _ in range(n)]


def _clip_samples(seed=0):
    rng = np.random.default_rng(seed)
    return [
        limit_tokens(tokens_from_regions(toy_clip(rng, m), target=k), 400)
        for k, m in enumerate(TOY_MOTIONS)
        for _ in range(2)
    ]


def _build(name):
    per_clip = name.startswith("activity")
    kw = dict(in_dim=TOY_DIM, num_classes=len(TOY_MOTIONS) if per_clip else len(TOY_CLASSES))
    if name not in ("region-linear", "region-mlp", "patch-linear"):
        kw.update(SMALL)
    torch.manual_seed(0)
    return create_head(name, **kw), per_clip


def _loss(model, batch, per_clip):
    logits = model(batch)
    if per_clip:
        return torch.nn.functional.cross_entropy(logits, batch.targets)
    return area_weighted_ce(logits, batch.labels, batch.weights)


@pytest.mark.parametrize(
    "name", ["region-linear", "region-mlp", "region-block", "scene-transformer", "activity-transformer", "patch-linear"]
)
def test_head_learns_and_reloads_identically(name, tmp_path):
    model, per_clip = _build(name)
    samples = _clip_samples() if per_clip else _segment_samples()
    batch = collate(samples, 400 if per_clip else None)
    model.norm.set_stats(batch.features[~batch.pad])
    model.eval()
    with torch.no_grad():
        before = float(_loss(model, batch, per_clip))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(12):
        loss = _loss(model, batch, per_clip)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = float(_loss(model, batch, per_clip))
        out = model(batch)
    assert after < 0.8 * before, (before, after)

    names = TOY_MOTIONS if per_clip else [str(c) for c in TOY_CLASSES]
    save_head(model, tmp_path / name, [{"id": k, "name": n} for k, n in enumerate(names)], {"note": "test"})
    doc = json.loads((tmp_path / name / "config.json").read_text())
    assert doc["name"] == name and doc["meta"] == {"note": "test"}
    assert not list(tmp_path.glob(f"{name}/*.pt")) and not list(tmp_path.glob(f"{name}/*.pkl"))
    loaded = load_head(tmp_path / name)
    assert loaded.class_names == list(names)
    with torch.no_grad():
        again = loaded.model(batch)
    assert torch.equal(out, again)


def test_registry_lists_every_head_and_rejects_unknown():
    assert {
        "region-linear",
        "region-mlp",
        "region-block",
        "scene-transformer",
        "activity-transformer",
        "patch-linear",
    } <= set(list_heads())
    with pytest.raises(ValueError, match="unknown head"):
        create_head("no-such-head", in_dim=4, num_classes=2)
    with pytest.raises(TypeError):
        create_head("region-linear", in_dim=4, num_classes=2, bogus=1)


def test_paper_defaults():
    scene = create_head("scene-transformer", in_dim=8, num_classes=3)
    act = create_head("activity-transformer", in_dim=8, num_classes=3)
    mlp = create_head("region-mlp", in_dim=8, num_classes=3)
    assert (scene.config.layers, scene.config.heads, scene.config.pos2d, scene.config.pos3d) == (3, 8, True, True)
    assert (act.config.layers, act.config.max_tokens, act.config.cls_token, act.config.time) == (3, 400, True, True)
    assert mlp.config.hidden == 1000


def test_padding_does_not_change_predictions():
    model, _ = _build("activity-transformer")
    model.eval()
    ts = _clip_samples()[0]
    with torch.no_grad():
        a = model(collate([ts], 400))
        b = model(collate([ts], 300))
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name,padded", [("scene-transformer", False), ("activity-transformer", True)])
def test_inference_encoder_equals_torchs_module(name, padded):
    """In eval mode the layers run with fused scaled-dot-product attention (masked where samples
    are padded); the outputs are torch's TransformerEncoder's (the training path; dropout 0)."""
    model, _ = _build(name)
    rng = np.random.default_rng(3)
    if padded:
        batch = collate(_clip_samples()[:2], 400)
        assert batch.pad.any()
    else:
        batch = collate([tokens_from_regions([toy_frame(rng)[0] for _ in range(3)])])
        assert not batch.pad.any()
    with torch.no_grad():
        fast = model.eval()(batch)
        module = model.train()(batch)  # dropout is 0: the same function, through torch's module
    if padded:  # per clip (class token)
        assert fast.shape == (2, model.config.num_classes)
    assert torch.allclose(fast, module, atol=1e-5)


def test_a_scenes_chunks_side_by_side_give_the_same_bits():
    """A scene over max_tokens is dealt into chunks; run on a pool (the lite daemon's refinement,
    torch on one thread) they give exactly the probabilities of running them one by one."""
    torch.manual_seed(0)
    model = create_head("scene-transformer", in_dim=TOY_DIM, num_classes=len(TOY_CLASSES), max_tokens=16, **SMALL)
    rng = np.random.default_rng(5)
    frames = [toy_frame(rng)[0] for _ in range(6)]  # 72 tokens: 5 chunks
    origin = frames_origin(frames)
    ts = join_frames([tokens_from_regions([r], origin=origin) for r in frames])

    def probs(workers: int):
        seen: set[str] = set()  # the threads the model ran on
        hook = model.register_forward_pre_hook(lambda m, a: seen.add(threading.current_thread().name))
        try:
            return token_probs(model, ts, workers=workers), seen
        finally:
            hook.remove()

    (one, one_threads), (pool, pool_threads) = probs(1), probs(3)
    assert one.shape == (72, len(TOY_CLASSES)) and np.allclose(one.sum(1), 1, atol=1e-5)
    assert np.array_equal(one, pool)
    assert one_threads == {threading.current_thread().name} and len(pool_threads) > 1
    assert all(name.startswith("regiond-chunk") for name in pool_threads)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert chunk_workers(5) == min(5, len(os.sched_getaffinity(0)))
        torch.set_num_threads(2)
        assert chunk_workers(5) == 1
    finally:
        torch.set_num_threads(before)


def test_loss_weights_regions_by_area():
    logits = torch.tensor([[[5.0, 0.0], [5.0, 0.0]]])
    labels = torch.tensor([[0, 1]])
    small_wrong = area_weighted_ce(logits, labels, torch.tensor([[0.9, 0.1]]))
    big_wrong = area_weighted_ce(logits, labels, torch.tensor([[0.1, 0.9]]))
    assert big_wrong > 4 * small_wrong
    ignored = area_weighted_ce(logits, torch.tensor([[0, -1]]), torch.tensor([[0.5, 0.5]]))
    assert float(ignored) == pytest.approx(float(torch.nn.functional.cross_entropy(logits[0, :1], labels[0, :1])))


def test_activity_task_pads_to_400(tmp_path):
    from support_toydata import write_toy_cache

    cache = write_toy_cache(tmp_path / "c", scenes=0, clips_per_class=1)
    task = ActivityTask(cache, cache.of_kind("clip"), {m: k for k, m in enumerate(TOY_MOTIONS)})
    batch = collate(task.val_samples(), task.pad_to)
    assert batch.features.shape[1] == 400 and batch.pad[:, 8 * 7 :].all()


def test_rotate_scene_keeps_heights_and_reembeds():
    from regiond.heads.batch import join_frames, rotate_scene

    rng = np.random.default_rng(0)
    ts = join_frames([tokens_from_regions([toy_frame(rng)[0]]) for _ in range(2)])
    turned = rotate_scene(ts, 1.0, (0.5, 0.0, 0.0))
    np.testing.assert_allclose(turned.xyz[:, 2], ts.xyz[:, 2])
    assert not np.allclose(turned.pos3d, ts.pos3d)
    full = rotate_scene(ts, 2 * np.pi)
    np.testing.assert_allclose(full.pos3d, ts.pos3d, atol=1e-4)


def test_mirrored_clips_swap_their_classes():
    from regiond.heads.batch import mirror_clip

    rng = np.random.default_rng(0)
    clip = tokens_from_regions(toy_clip(rng, "left"), target=0)
    back = mirror_clip(mirror_clip(clip, 8, horizontal=True, reverse=True), 8, horizontal=True, reverse=True)
    np.testing.assert_allclose(back.boxes, clip.boxes)
    np.testing.assert_allclose(back.pos2d, clip.pos2d, atol=1e-4)
    rev = mirror_clip(clip, 8, reverse=True)
    assert (rev.frame == 7 - clip.frame).all()

    class Cache:
        def frames(self, item, patches=False):
            return toy_clip(np.random.default_rng(1), item.label)

    class Item:
        label = "left"
        frames = [f"{i:06d}" for i in range(8)]

    index = {m: k for k, m in enumerate(TOY_MOTIONS)}
    task = ActivityTask(
        Cache(), [Item()], index, token_dropout=0.0, symmetries={"hflip": {"left": "right", "right": "left"}}
    )
    original = task._clips[0]
    seen = set()
    for _ in range(20):
        (s,) = task.train_samples(rng)
        seen.add(TOY_MOTIONS[s.target])
        flipped = not np.allclose(s.boxes, original.boxes)
        assert flipped == (TOY_MOTIONS[s.target] == "right")
    assert seen == {"left", "right"}
