"""Furniture shapes: boxes in the object's frame (x across, y front to back with +y at the back,
z up) with random proportions, and the footprint (width, depth) they stand on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Box:
    """An axis-aligned box in its object's frame: centre and full size (metres)."""

    centre: tuple[float, float, float]
    size: tuple[float, float, float]


def table_shape(rng):
    w, d, h = rng.uniform(0.9, 1.6), rng.uniform(0.7, 1.0), rng.uniform(0.70, 0.78)
    t, leg = 0.04, 0.05
    boxes = [Box((0, 0, h - t / 2), (w, d, t))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            boxes.append(Box((sx * (w / 2 - leg), sy * (d / 2 - leg), (h - t) / 2), (leg, leg, h - t)))
    return boxes, (w, d)


def chair_shape(rng):
    w, d, seat = rng.uniform(0.40, 0.50), rng.uniform(0.40, 0.50), rng.uniform(0.42, 0.48)
    back = rng.uniform(0.35, 0.50)
    leg = 0.035
    boxes = [Box((0, 0, seat - 0.025), (w, d, 0.05)), Box((0, d / 2 - 0.025, seat + back / 2), (w, 0.05, back))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            boxes.append(Box((sx * (w / 2 - leg), sy * (d / 2 - leg), (seat - 0.05) / 2), (leg, leg, seat - 0.05)))
    return boxes, (w, d)


def cabinet_shape(rng):
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.6), rng.uniform(0.8, 1.2)
    return [Box((0, 0, h / 2), (w, d, h))], (w, d)


def bookshelf_shape(rng):
    w, d, h = rng.uniform(0.7, 1.1), rng.uniform(0.28, 0.38), rng.uniform(1.5, 1.9)
    boxes = [Box((0, 0.02, h / 2), (w, d - 0.04, h))]
    return boxes, (w, d)


def bed_shape(rng):
    w, length, h = rng.uniform(1.0, 1.7), rng.uniform(1.9, 2.1), rng.uniform(0.45, 0.6)
    boxes = [
        Box((0, 0, h / 2), (w, length, h)),
        Box((0, length / 2 - 0.04, h + 0.25), (w, 0.08, 0.5)),
        Box((0, length / 2 - 0.35, h + 0.07), (w * 0.8, 0.4, 0.14)),
    ]
    return boxes, (w, length)


def sofa_shape(rng):
    w, d, seat = rng.uniform(1.5, 2.2), rng.uniform(0.8, 0.95), rng.uniform(0.40, 0.48)
    arm = 0.18
    boxes = [
        Box((0, -0.05, seat / 2), (w, d - 0.1, seat)),
        Box((0, d / 2 - 0.1, seat + 0.22), (w, 0.2, 0.44)),
        Box((-(w / 2 - arm / 2), -0.05, seat + 0.1), (arm, d - 0.1, 0.2)),
        Box(((w / 2 - arm / 2), -0.05, seat + 0.1), (arm, d - 0.1, 0.2)),
    ]
    return boxes, (w, d)
