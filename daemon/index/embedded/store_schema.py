"""The SQLite store's file format: its version tags, tables, and the rows it reads back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FORMAT = "regiond.index/2"


LEGACY_FORMAT = "regiond.index/1"  # no normaliser: raw features, scored as they were


FORMATS = (FORMAT, LEGACY_FORMAT)


SQLITE_MAGIC = b"SQLite format 3\x00"


SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    key       INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id  TEXT NOT NULL UNIQUE,
    width     INTEGER NOT NULL,
    height    INTEGER NOT NULL,
    metadata  TEXT NOT NULL,           -- JSON object of string -> string
    n_regions INTEGER NOT NULL,
    features  BLOB NOT NULL,           -- n_regions × dim, storage dtype, little-endian
    crc       INTEGER NOT NULL         -- CRC-32 of features: SQLite does not check blob contents
);
CREATE TABLE regions (
    image_key INTEGER NOT NULL,
    region    INTEGER NOT NULL,
    x0 REAL, y0 REAL, x1 REAL, y1 REAL,
    area      INTEGER NOT NULL,
    rle       BLOB NOT NULL,           -- uint32 COCO counts, column-major
    PRIMARY KEY (image_key, region)
) WITHOUT ROWID;
CREATE TABLE log (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, image_key INTEGER NOT NULL);
"""


NORMALISER_SCHEMA = """
CREATE TABLE IF NOT EXISTS normaliser (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    data BLOB NOT NULL,                -- Normaliser.to_bytes(): parameters + digest
    crc  INTEGER NOT NULL
);
"""


@dataclass
class ImageRow:
    key: int
    image_id: str
    width: int
    height: int
    metadata: dict = field(default_factory=dict)
    n_regions: int = 0


@dataclass
class RegionRow:
    image_key: int
    region: int
    box: np.ndarray  # [x0, y0, x1, y1], x1/y1 exclusive
    area: int
    counts: np.ndarray  # uint32 RLE counts
