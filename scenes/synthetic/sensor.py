"""What a real RGB-D sensor and its pose tracking do to a rendered frame: the generated rooms
made as hard as real scans (ScanNet: a structured-light depth camera, BundleFusion poses).

`kinect` (SENSORS), applied to the depth and the pose only; the colour image and its label and
instance maps stay as rendered (what a person annotates, and what a ground-truth masker sees):
- depth noise along the ray growing with z²: sigma(z) = 1.2 mm + 1.9 mm (z - 0.4 m)²/m², the
  Kinect's axial noise (Nguyen, Izadi, Lovell, 3DIMPVT 2012: 1.9 mm at 1 m, 26 mm at 4 m),
  then rounded to millimetres as the sensor stores it;
- depth edges (a neighbour over 5 % nearer or farther): half their pixels are lost (holes), a
  quarter become flying pixels, a depth anywhere between the two sides of the edge; and a
  small share of all pixels is lost at random;
- the depth registered to the colour image 2 px right and 1 px down of where it belongs (a
  calibration error of the depth-to-colour registration);
- the pose tracking's error, smooth along the trajectory: the camera's position off by up to
  3 cm and its orientation by up to 1° (about the camera centre), zero at the first frame (it
  defines the world) and not returning to zero at the end of the loop (BundleFusion's drift).

The true instance of each depth pixel (the instance map moved as the depth was, flying pixels
none) is kept in meta["depth_instances"]: the ground truth of the fused cloud's points, as a
real scan's annotation lies on its reconstruction. Deterministic by (scene seed, frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.errors import InputError


@dataclass(frozen=True)
class SensorModel:
    name: str
    noise: tuple[float, float, float] = (0.0012, 0.0019, 0.4)  # a, b, z0: sigma(z) = a + b (z - z0)²
    edge: float = 0.05  # a neighbour this share nearer or farther makes a depth edge
    edge_holes: float = 0.5  # share of edge pixels lost
    flying: float = 0.25  # share of edge pixels given a depth between the two sides
    dropout: float = 0.01  # share of all pixels lost
    shift: tuple[int, int] = (2, 1)  # depth registered this many pixels right and down of the colour
    drift: float = 0.03  # metres: the pose error's largest position offset over the trajectory
    drift_deg: float = 1.0  # degrees: ... and its largest rotation

    def sigma(self, z: np.ndarray) -> np.ndarray:
        a, b, z0 = self.noise
        return a + b * (z - z0) ** 2

    def poses(self, poses: np.ndarray, seed: int) -> np.ndarray:
        """The tracked poses of a trajectory's true camera-to-world `poses` (N×4×4)."""
        n = len(poses)
        rng = np.random.default_rng([seed, 0x5E2502])
        k = np.arange(n) / max(n, 1)

        def smooth() -> np.ndarray:  # N×3, zero at k = 0, largest norm 1
            freq = rng.uniform(0.3, 1.3, (2, 3))  # cycles a loop: not periodic over it
            phase = rng.uniform(0, 2 * np.pi, (2, 3))
            amp = rng.uniform(0.5, 1.0, (2, 3))
            wave = (amp[:, None] * np.sin(2 * np.pi * freq[:, None] * k[None, :, None] + phase[:, None])).sum(0)
            wave -= wave[0]
            return wave / max(float(np.linalg.norm(wave, axis=1).max()), 1e-12)

        offset = smooth() * self.drift
        rotvec = smooth() * np.deg2rad(self.drift_deg)
        out = np.array(poses, np.float64, copy=True)
        for i in range(n):
            out[i, :3, :3] = _rotation(rotvec[i]) @ out[i, :3, :3]
            out[i, :3, 3] += offset[i]
        return out

    def depth(self, depth: np.ndarray, instances: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(measured depth H×W float32 metres, 0 none; the true instance of each depth pixel)."""
        rng = np.random.default_rng(seed)
        d = np.asarray(depth, np.float32)
        inst = np.asarray(instances)
        near, far = _neighbours(d)
        edge = (d > 0) & ((far > d * (1 + self.edge)) | ((near < d * (1 - self.edge)) & (near > 0)))
        u = rng.random(d.shape, dtype=np.float32)
        fly = edge & (u < self.flying)
        hole = (edge & (u >= self.flying) & (u < self.flying + self.edge_holes)) | (
            rng.random(d.shape, dtype=np.float32) < self.dropout
        )
        other = np.where(far > d * (1 + self.edge), far, near)  # the far side of the edge, else the near
        t = rng.random(d.shape, dtype=np.float32)
        out = np.where(fly, d + t * (other - d), d)
        out = out + rng.standard_normal(d.shape, dtype=np.float32) * self.sigma(out).astype(np.float32)
        out = np.where(hole | (d <= 0), 0, np.round(np.maximum(out, 0) * 1000) / 1000).astype(np.float32)
        truth = np.where(fly | (out <= 0), 0, inst).astype(inst.dtype)
        dx, dy = self.shift
        return _shifted(out, dx, dy), _shifted(truth, dx, dy)


def _rotation(v: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation by |v| radians about v."""
    a = float(np.linalg.norm(v))
    if a < 1e-15:
        return np.eye(3)
    x, y, z = v / a
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def _neighbours(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the nearest and the farthest valid depth among its 4 neighbours (itself where none)."""
    p = np.pad(d, 1, mode="edge")
    stack = np.stack([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
    valid = stack > 0
    near = np.where(valid, stack, np.inf).min(axis=0)
    far = np.where(valid, stack, -np.inf).max(axis=0)
    return np.where(np.isfinite(near), near, d), np.where(np.isfinite(far), far, d)


def _shifted(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """a moved dx pixels right and dy down, 0 where nothing came in."""
    out = np.zeros_like(a)
    h, w = a.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = a[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


#: the sensors a synthetic scene can be seen through; "clean": perfect depth, poses and registration
SENSORS = {"clean": None, "kinect": SensorModel("kinect")}


def sensor_model(name: str) -> SensorModel | None:
    if name not in SENSORS:
        raise InputError("sensor", f"unknown sensor {name!r}; one of {', '.join(SENSORS)}")
    return SENSORS[name]
