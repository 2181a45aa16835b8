"""Deterministic synthetic rooms: walls, floor, ceiling and furniture made of boxes.

World frame: metres, z up, the room spans [0, W] × [0, D] × [0, H]. Every object is a union
of boxes with one NYU40 class, a base colour and a procedural texture. Classes come with
their own ranges of shapes, colours and textures, and some are deliberately alike in
appearance so that only position or context tells them apart:
  - floor and ceiling: the same near-white colours and textures; only height differs;
  - picture and window: the same framed panels and sizes; windows hang high (centre
    1.75-2.0 m), pictures at eye level (centre 1.1-1.4 m).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from regiond.scenes.synthetic.furniture import (
    Box,
    bed_shape,
    bookshelf_shape,
    cabinet_shape,
    chair_shape,
    sofa_shape,
    table_shape,
)

# NYU40 ids of the classes the generator uses.
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE, CEILING = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    22,
)
ROOM_CLASSES = (WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE, CEILING)

TEXTURES = ("solid", "stripes", "checker", "noise", "wood")
TEXTURE_ID = {name: i for i, name in enumerate(TEXTURES)}


@dataclass
class RoomObject:
    """One object: boxes in a local frame, placed by a yaw about z and a position."""

    name: str
    nyu40: int
    boxes: list[Box]
    position: tuple[float, float, float]
    yaw: float = 0.0
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)  # RGB in [0, 1]
    texture: str = "solid"
    texture_scale: float = 0.2  # metres per texture period / cell
    texture_amp: float = 0.15  # relative brightness modulation
    texture_dir: tuple[float, float, float] = (1.0, 0.0, 0.0)
    part_colors: list = field(default_factory=list)  # optional colour per box (frames of pictures ...)

    def mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World-space (vertices V×3 float32, triangles T×3 uint32, box index per triangle T)."""
        verts, tris, owner = [], [], []
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        for k, b in enumerate(self.boxes):
            v = (_UNIT_CUBE - 0.5) * np.asarray(b.size) + np.asarray(b.centre)
            verts.append(v @ R.T + np.asarray(self.position))
            tris.append(_CUBE_TRIS + 8 * k)
            owner.append(np.full(12, k))
        return (np.concatenate(verts).astype(np.float32), np.concatenate(tris).astype(np.uint32), np.concatenate(owner))

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        v, _, _ = self.mesh()
        return v.min(axis=0), v.max(axis=0)


_UNIT_CUBE = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float64)
# 12 outward-facing triangles of the unit cube above (vertex index = 4x + 2y + z).
_CUBE_TRIS = np.array(
    [
        [0, 1, 3],
        [0, 3, 2],  # x = 0
        [4, 6, 7],
        [4, 7, 5],  # x = 1
        [0, 4, 5],
        [0, 5, 1],  # y = 0
        [2, 3, 7],
        [2, 7, 6],  # y = 1
        [0, 2, 6],
        [0, 6, 4],  # z = 0
        [1, 5, 7],
        [1, 7, 3],  # z = 1
    ],
    np.int64,
)


@dataclass
class Room:
    seed: int
    width: float  # x extent (m)
    depth: float  # y extent (m)
    height: float  # z extent (m)
    objects: list[RoomObject]

    def classes(self) -> list[int]:
        return sorted({o.nyu40 for o in self.objects})


# --- appearance per class -----------------------------------------------------------------


def _hsv(rng, h, s, v) -> tuple[float, float, float]:
    """A colour from HSV ranges (each a (lo, hi) pair)."""
    return colorsys.hsv_to_rgb(rng.uniform(*h) % 1.0, rng.uniform(*s), rng.uniform(*v))


def _unit(rng) -> tuple[float, float, float]:
    d = rng.normal(size=3)
    return tuple(d / np.linalg.norm(d))


# class → (colour sampler, textures it may use, texture scale range, amplitude range)
APPEARANCE = {
    WALL: (lambda r: _hsv(r, (0, 1), (0.05, 0.25), (0.70, 0.85)), ("solid", "noise"), (0.3, 0.8), (0.03, 0.08)),
    FLOOR: (lambda r: _hsv(r, (0, 1), (0.0, 0.04), (0.88, 0.96)), ("solid", "checker"), (0.3, 0.6), (0.03, 0.06)),
    CEILING: (lambda r: _hsv(r, (0, 1), (0.0, 0.04), (0.88, 0.96)), ("solid", "checker"), (0.3, 0.6), (0.03, 0.06)),
    TABLE: (lambda r: _hsv(r, (0.05, 0.10), (0.45, 0.75), (0.35, 0.65)), ("wood",), (0.04, 0.10), (0.15, 0.30)),
    CHAIR: (lambda r: _hsv(r, (0, 1), (0.55, 0.90), (0.30, 0.80)), ("solid", "noise"), (0.02, 0.05), (0.05, 0.15)),
    CABINET: (lambda r: _hsv(r, (0.08, 0.14), (0.10, 0.40), (0.55, 0.85)), ("stripes",), (0.35, 0.50), (0.20, 0.35)),
    BED: (
        lambda r: _hsv(r, (0.50, 0.70), (0.20, 0.50), (0.70, 0.95)),
        ("checker", "stripes"),
        (0.12, 0.25),
        (0.15, 0.30),
    ),
    SOFA: (lambda r: _hsv(r, (0, 1), (0.30, 0.60), (0.25, 0.55)), ("noise",), (0.01, 0.03), (0.15, 0.30)),
    DOOR: (lambda r: _hsv(r, (0.06, 0.10), (0.50, 0.80), (0.30, 0.50)), ("wood",), (0.05, 0.12), (0.10, 0.25)),
    BOOKSHELF: (lambda r: _hsv(r, (0, 1), (0.50, 0.90), (0.40, 0.80)), ("stripes",), (0.03, 0.06), (0.35, 0.50)),
    # Pictures and windows share one appearance: only their height on the wall differs.
    PICTURE: (lambda r: _hsv(r, (0.50, 0.65), (0.15, 0.45), (0.60, 0.90)), ("noise",), (0.03, 0.08), (0.15, 0.30)),
    WINDOW: (lambda r: _hsv(r, (0.50, 0.65), (0.15, 0.45), (0.60, 0.90)), ("noise",), (0.03, 0.08), (0.15, 0.30)),
}
FRAME_COLOR = {PICTURE: ((0, 1), (0.0, 0.1), (0.1, 0.95)), WINDOW: ((0, 1), (0.0, 0.1), (0.1, 0.95))}


def _styled(rng, name: str, nyu40: int, boxes, position, yaw=0.0, part_colors=None, appearance=None) -> RoomObject:
    sample, textures, scale, amp = (appearance or APPEARANCE)[nyu40]
    tex = textures[rng.integers(len(textures))]
    return RoomObject(
        name,
        nyu40,
        boxes,
        tuple(float(x) for x in position),
        float(yaw),
        sample(rng),
        tex,
        float(rng.uniform(*scale)),
        float(rng.uniform(*amp)),
        _unit(rng),
        part_colors or [],
    )


# --- shapes per class (object frame: x across, y front to back (+y = back), z up) --------------


SHAPES = {
    TABLE: table_shape,
    CHAIR: chair_shape,
    CABINET: cabinet_shape,
    BOOKSHELF: bookshelf_shape,
    BED: bed_shape,
    SOFA: sofa_shape,
}
# Floor furniture that stands with its back (local +y) to a wall, with the chance it appears.
AGAINST_WALL = ((BED, 0.7), (SOFA, 0.7), (CABINET, 1.0), (CABINET, 0.5), (BOOKSHELF, 0.7))


# --- layout -------------------------------------------------------------------------------


class _Walls:
    """Free intervals along each wall, for wall-mounted items and furniture backs."""

    def __init__(self, W, D):
        self.length = {0: W, 1: D, 2: W, 3: D}  # 0: y=0, 1: x=W, 2: y=D, 3: x=0
        self.used = {k: [] for k in range(4)}

    def place(self, rng, wall, width, margin=0.15, tries=30):
        L = self.length[wall]
        for _ in range(tries):
            if L - 2 * margin < width:
                return None
            a = rng.uniform(margin, L - margin - width)
            if all(a + width + margin <= u0 or a >= u1 + margin for u0, u1 in self.used[wall]):
                self.used[wall].append((a, a + width))
                return a + width / 2
        return None


def _wall_frame(W, D, wall, s, offset):
    """World (x, y) and yaw for a point `s` metres along `wall`, `offset` metres into the room;
    the object's local +y points at the wall."""
    if wall == 0:
        return (s, offset), np.pi  # wall y=0: local +y → world -y
    if wall == 1:
        return (W - offset, s), -np.pi / 2  # wall x=W: local +y → world +x
    if wall == 2:
        return (W - s, D - offset), 0.0  # wall y=D
    return (offset, D - s), np.pi / 2  # wall x=0


def make_room(seed: int) -> Room:
    """The room of `seed`: the same seed always gives the same room."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    W, D, H = rng.uniform(4.0, 6.5), rng.uniform(3.6, 5.5), rng.uniform(2.6, 3.0)
    objs: list[RoomObject] = []
    t = 0.1  # wall thickness
    wall_boxes = [
        ((W / 2, -t / 2, H / 2), (W + 2 * t, t, H + 2 * t)),
        ((W + t / 2, D / 2, H / 2), (t, D + 2 * t, H + 2 * t)),
        ((W / 2, D + t / 2, H / 2), (W + 2 * t, t, H + 2 * t)),
        ((-t / 2, D / 2, H / 2), (t, D + 2 * t, H + 2 * t)),
    ]
    wall_style = _styled(rng, "wall", WALL, [], (0, 0, 0))
    for k, (c, s) in enumerate(wall_boxes):
        objs.append(
            RoomObject(
                f"wall_{k}",
                WALL,
                [Box(c, s)],
                (0, 0, 0),
                0.0,
                wall_style.color,
                wall_style.texture,
                wall_style.texture_scale,
                wall_style.texture_amp,
                wall_style.texture_dir,
            )
        )
    objs.append(_styled(rng, "floor", FLOOR, [Box((W / 2, D / 2, -t / 2), (W + 2 * t, D + 2 * t, t))], (0, 0, 0)))
    objs.append(
        _styled(rng, "ceiling", CEILING, [Box((W / 2, D / 2, H + t / 2), (W + 2 * t, D + 2 * t, t))], (0, 0, 0))
    )

    walls = _Walls(W, D)
    counter: dict[int, int] = {}

    def name(cls):
        counter[cls] = counter.get(cls, 0) + 1
        return f"{_NAMES[cls]}_{counter[cls]}"

    # A door on one wall, then windows high and pictures at eye level.
    dwall = int(rng.integers(4))
    dw, dh = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.15)
    s = walls.place(rng, dwall, dw + 0.3)
    door_span = None
    if s is not None:
        door_span = (s - dw / 2 - 0.45, s + dw / 2 + 0.45)  # the doorway stays clear of furniture
        (x, y), yaw = _wall_frame(W, D, dwall, s, 0.02)
        objs.append(_styled(rng, name(DOOR), DOOR, [Box((0, 0, dh / 2), (dw, 0.04, dh))], (x, y, 0), yaw))
    for cls, n, zc in ((WINDOW, int(rng.integers(1, 3)), (1.75, 2.0)), (PICTURE, int(rng.integers(1, 4)), (1.1, 1.4))):
        for _ in range(n):
            pw, ph = rng.uniform(0.6, 1.0), rng.uniform(0.5, 0.8)
            wall = int(rng.integers(4))
            s = walls.place(rng, wall, pw)
            if s is None:
                continue
            (x, y), yaw = _wall_frame(W, D, wall, s, 0.03)
            z = min(rng.uniform(*zc), H - ph / 2 - 0.1)
            f = 0.05  # frame width
            boxes = [
                Box((0, 0.005, 0), (pw - 2 * f, 0.05, ph - 2 * f)),  # the panel
                Box((0, 0, (ph - f) / 2), (pw, 0.06, f)),
                Box((0, 0, -(ph - f) / 2), (pw, 0.06, f)),
                Box(((pw - f) / 2, 0, 0), (f, 0.06, ph)),
                Box((-(pw - f) / 2, 0, 0), (f, 0.06, ph)),
            ]
            frame_col = _hsv(rng, *FRAME_COLOR[cls])
            obj = _styled(rng, name(cls), cls, boxes, (x, y, z), yaw)
            obj.part_colors = [obj.color] + [frame_col] * 4
            objs.append(obj)

    # Furniture with its back to a wall: a fresh interval list so it may stand under pictures.
    floor_walls = _Walls(W, D)
    if door_span is not None:
        floor_walls.used[dwall].append(door_span)
    footprints: list[tuple[float, float, float, float]] = []
    for cls, p in AGAINST_WALL:
        if rng.random() > p:
            continue
        boxes, (fw, fd) = SHAPES[cls](rng)
        for _ in range(10):
            wall = int(rng.integers(4))
            s = floor_walls.place(rng, wall, fw, margin=0.05)
            if s is None:
                continue
            (x, y), yaw = _wall_frame(W, D, wall, s, fd / 2 + 0.01)
            fp = _footprint(x, y, fw, fd, yaw)
            if not any(_overlap(fp, g) for g in footprints):
                footprints.append(fp)
                objs.append(_styled(rng, name(cls), cls, boxes, (x, y, 0), yaw))
                break

    # A table near the middle with chairs around it.
    tboxes, (tw, td) = SHAPES[TABLE](rng)
    for _ in range(30):
        x, y = rng.uniform(0.35 * W, 0.65 * W), rng.uniform(0.35 * D, 0.65 * D)
        yaw = float(rng.choice([0.0, np.pi / 2]))
        fp = _footprint(x, y, tw + 1.0, td + 1.0, yaw)
        if not any(_overlap(fp, g) for g in footprints):
            footprints.append(_footprint(x, y, tw, td, yaw))
            objs.append(_styled(rng, name(TABLE), TABLE, tboxes, (x, y, 0), yaw))
            c, s_ = np.cos(yaw), np.sin(yaw)
            sides = [(0, -1), (0, 1), (-1, 0), (1, 0)]
            for k in rng.permutation(4)[: int(rng.integers(2, 5))]:
                sx, sy = sides[k]
                lx, ly = sx * (tw / 2 + 0.25), sy * (td / 2 + 0.25)
                cx, cy = x + c * lx - s_ * ly, y + s_ * lx + c * ly
                # the chair's back (local +y) faces away from the table
                cyaw = np.arctan2(cy - y, cx - x) - np.pi / 2 + rng.normal(0, 0.15)
                cb, _ = SHAPES[CHAIR](rng)
                objs.append(_styled(rng, name(CHAIR), CHAIR, cb, (cx, cy, 0), cyaw))
            break
    return Room(int(seed), float(W), float(D), float(H), objs)


_NAMES = {
    WALL: "wall",
    FLOOR: "floor",
    CEILING: "ceiling",
    TABLE: "table",
    CHAIR: "chair",
    CABINET: "cabinet",
    BED: "bed",
    SOFA: "sofa",
    DOOR: "door",
    WINDOW: "window",
    BOOKSHELF: "bookshelf",
    PICTURE: "picture",
}


def _footprint(x, y, w, d, yaw):
    """Axis-aligned (x0, y0, x1, y1) of a w×d rectangle rotated by yaw about (x, y)."""
    c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
    hx, hy = (w * c + d * s) / 2, (w * s + d * c) / 2
    return (x - hx, y - hy, x + hx, y + hy)


def _overlap(a, b, margin=0.1):
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])
