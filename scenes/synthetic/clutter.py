"""Clutter: small things (5-30 cm boxes) on furniture tops, on each other and on the floor, some
against a wall and some touching each other, as real rooms (ScanNet) hold them.

Off by default (`SyntheticScene(seed, clutter=True)`): every other room stays as it was. The
clutter has its own random stream (seeded by the room's seed) and comes after the room's
objects, so the room's objects keep their instance ids. Each thing is an instance of its own
with a NYU40 class: box (29), books (23) or otherprop (40: cups, bottles, lamps, bags).
"""

from __future__ import annotations

import numpy as np

from regiond.scenes.synthetic.furniture import Box
from regiond.scenes.synthetic.room import (
    BED,
    CABINET,
    CEILING,
    DOOR,
    FLOOR,
    TABLE,
    WALL,
    Room,
    _hsv,
    _styled,
    _wall_frame,
)

BOOKS, BOX, OTHERPROP = 23, 29, 40
CLUTTER_CLASSES = (BOOKS, BOX, OTHERPROP)
# class → (colour sampler, textures, texture scale range, amplitude range), as room.APPEARANCE
APPEARANCE = {
    BOOKS: (lambda r: _hsv(r, (0, 1), (0.50, 0.90), (0.35, 0.85)), ("stripes",), (0.01, 0.02), (0.20, 0.35)),
    BOX: (lambda r: _hsv(r, (0.06, 0.12), (0.30, 0.60), (0.45, 0.80)), ("solid", "noise"), (0.02, 0.05), (0.05, 0.15)),
    OTHERPROP: (lambda r: _hsv(r, (0, 1), (0.40, 0.95), (0.30, 0.95)), ("solid", "noise"), (0.01, 0.04), (0.05, 0.2)),
}
SURFACES = (TABLE, CABINET, BED)  # tops clutter stands on (bookshelf tops are above the camera)
STRUCTURE = (WALL, FLOOR, CEILING)


def _size(rng, cls) -> tuple[float, float, float]:
    """(width, depth, height) in metres, each 5-30 cm."""
    if cls == BOOKS:  # a pile of books
        return rng.uniform(0.15, 0.25), rng.uniform(0.2, 0.3), rng.uniform(0.05, 0.12)
    if cls == OTHERPROP and rng.random() < 0.5:  # a cup, a bottle, a lamp: narrow and upright
        w = rng.uniform(0.06, 0.12)
        return w, w, rng.uniform(0.1, 0.3)
    return rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3), rng.uniform(0.05, 0.3)


class _Space:
    """World boxes (lo, hi) taken so far; things may touch but not overlap."""

    def __init__(self, room: Room):
        self.boxes = []
        for o in room.objects:
            if o.nyu40 in STRUCTURE:
                continue
            lo, hi = o.world_bounds()
            if o.nyu40 == DOOR:  # the doorway stays clear
                lo, hi = lo - [0.5, 0.5, 0], hi + [0.5, 0.5, 0]
            self.boxes.append((lo, hi))
        self.room = (np.zeros(3), np.array([room.width, room.depth, room.height]))

    def take(self, lo, hi, eps=1e-4) -> bool:
        if (lo < self.room[0] - eps).any() or (hi > self.room[1] + eps).any():
            return False
        if any(((lo < b_hi - eps) & (b_lo < hi - eps)).all() for b_lo, b_hi in self.boxes):
            return False
        self.boxes.append((lo, hi))
        return True


def _surfaces(room: Room) -> list[tuple]:
    """Tops to stand things on: (centre of the top, yaw, half width, half depth) of each
    supporting object's first box (a table's top, a cabinet, a bed's mattress: front half)."""
    out = []
    for o in room.objects:
        if o.nyu40 not in SURFACES:
            continue
        b = o.boxes[0]
        (cx, cy, cz), (w, d, h) = b.centre, b.size
        if o.nyu40 == BED:  # the front half: the pillow and headboard are at the back (+y)
            cy, d = cy - d / 4, d / 2
        c, s = np.cos(o.yaw), np.sin(o.yaw)
        pos = np.array(o.position) + [c * cx - s * cy, s * cx + c * cy, cz + h / 2]
        out.append((pos, o.yaw, w / 2, d / 2))
    return out


def add_clutter(room: Room) -> Room:
    """`room` with a seeded 10-25 small things added (fewer where they do not fit)."""
    rng = np.random.default_rng([room.seed, 0xC1077E])
    space, surfaces = _Space(room), _surfaces(room)
    placed: list[tuple] = []  # (position, yaw, w, d, h) of each thing, to put the next beside or on
    count = 0
    for _ in range(int(rng.integers(10, 26))):
        cls = CLUTTER_CLASSES[int(rng.integers(len(CLUTTER_CLASSES)))]
        for _ in range(30):
            w, d, h = _size(rng, cls)
            where = rng.random()
            if placed and where < 0.3:  # beside an earlier thing, touching it (or on top of it)
                p, yaw, pw, pd, ph = placed[int(rng.integers(len(placed)))]
                c, s = np.cos(yaw), np.sin(yaw)
                if rng.random() < 0.3:
                    local = (rng.uniform(-0.3, 0.3) * pw, rng.uniform(-0.3, 0.3) * pd, ph)
                else:
                    side = rng.choice([-1, 1])
                    local = (side * (pw + w) / 2, rng.uniform(-0.5, 0.5) * max(pd - d, 0), 0.0)
                pos = p + [c * local[0] - s * local[1], s * local[0] + c * local[1], local[2]]
            elif surfaces and where < 0.65:  # on a furniture top
                p, yaw, hw, hd = surfaces[int(rng.integers(len(surfaces)))]
                if hw * 2 < w or hd * 2 < d:
                    continue
                u, v = rng.uniform(-hw + w / 2, hw - w / 2), rng.uniform(-hd + d / 2, hd - d / 2)
                c, s = np.cos(yaw), np.sin(yaw)
                pos = p + [c * u - s * v, s * u + c * v, 0.0]
                yaw += rng.normal(0, 0.2) * (rng.random() < 0.5)
            elif where < 0.85:  # on the floor against a wall (its back, local +y, touching it)
                wall = int(rng.integers(4))
                length = room.width if wall in (0, 2) else room.depth
                (x, y), yaw = _wall_frame(room.width, room.depth, wall, rng.uniform(w / 2, length - w / 2), d / 2)
                pos = np.array([x, y, 0.0])
            else:  # on the floor, anywhere
                pos = np.array([rng.uniform(0.3, room.width - 0.3), rng.uniform(0.3, room.depth - 0.3), 0.0])
                yaw = rng.uniform(0, np.pi)
            obj = _styled(
                rng, f"clutter_{count + 1}", cls, [Box((0, 0, h / 2), (w, d, h))], pos, yaw, appearance=APPEARANCE
            )
            if space.take(*obj.world_bounds()):
                room.objects.append(obj)
                placed.append((np.asarray(pos, float), float(yaw), w, d, h))
                count += 1
                break
    return room
