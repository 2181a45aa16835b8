"""CPU rendering of synthetic rooms with Open3D's RaycastingScene: colour, depth along the
optical axis, per-pixel NYU40 labels and object instance ids, plus a camera trajectory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regiond.core.frames import Camera, camera_rays
from regiond.scenes.synthetic.room import TEXTURE_ID, Room


@dataclass
class Render:
    rgb: np.ndarray  # H×W×3 uint8
    depth: np.ndarray  # H×W float32 metres (0 = no hit)
    labels: np.ndarray  # H×W uint8 NYU40 ids (0 = no hit)
    instances: np.ndarray  # H×W uint16 object index + 1 (0 = no hit)


def default_camera(width: int = 640, height: int = 480) -> Camera:
    """A ScanNet-like depth camera (fx = fy = 0.9 × width, centred principal point)."""
    f = 0.9 * width
    return Camera(f, f, (width - 1) / 2, (height - 1) / 2, int(width), int(height))


def look_pose(position, yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes: x right, y down, z forward) in a z-up world."""
    f = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, f, position
    return pose


def trajectory(room: Room, frames: int) -> np.ndarray:
    """frames×4×4 camera-to-world poses: one loop around the room's middle at head height,
    looking across the room (towards the far side) with a gentle sweep of yaw and a pitch
    that swings from the floor up to the ceiling's edge (deterministic per room seed)."""
    rng = np.random.default_rng([room.seed, 0x7EA])
    theta0 = rng.uniform(0, 2 * np.pi)
    rx, ry = 0.22 * room.width, 0.22 * room.depth
    z = rng.uniform(1.35, 1.6)
    poses = []
    for k in range(frames):
        th = theta0 + 2 * np.pi * k / max(frames, 1)
        pos = np.array([room.width / 2 + rx * np.cos(th), room.depth / 2 + ry * np.sin(th), z + 0.05 * np.sin(3 * th)])
        yaw = th + np.pi + 0.45 * np.sin(2 * th)
        pitch = np.deg2rad(-14 + 16 * np.sin(5 * th + 1.0))
        poses.append(look_pose(pos, yaw, pitch))
    return np.stack(poses)


class Renderer:
    """Ray-casts one room. Build once per room; render() any number of views."""

    def __init__(self, room: Room, ambient: float = 0.55):
        import open3d as o3d  # heavy: only when a room is rendered

        self.room = room
        self.ambient = float(ambient)
        self.scene = o3d.t.geometry.RaycastingScene()
        n = len(room.objects)
        self.obj_class = np.zeros(n, np.uint8)
        self.obj_texture = np.zeros(n, np.int64)
        self.obj_scale = np.zeros(n, np.float32)
        self.obj_amp = np.zeros(n, np.float32)
        self.obj_dir = np.zeros((n, 3), np.float32)
        self.geom_to_obj = {}
        self.tri_color: list[np.ndarray] = []  # per object: colour of each triangle
        for i, o in enumerate(room.objects):
            v, t, owner = o.mesh()
            gid = self.scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(t))
            self.geom_to_obj[int(gid)] = i
            cols = np.array(o.part_colors if o.part_colors else [o.color] * len(o.boxes), np.float32)
            self.tri_color.append(cols[owner])
            self.obj_class[i] = o.nyu40
            self.obj_texture[i] = TEXTURE_ID[o.texture]
            self.obj_scale[i], self.obj_amp[i] = o.texture_scale, o.texture_amp
            self.obj_dir[i] = o.texture_dir
        gids = np.array(sorted(self.geom_to_obj), np.int64)
        self.gid_lut = np.zeros(gids.max() + 2, np.int64)
        self.gid_lut[gids] = [self.geom_to_obj[g] for g in gids]
        # Triangle colours concatenated, addressed by per-object offsets.
        self.tri_offset = np.cumsum([0] + [len(c) for c in self.tri_color])[:-1]
        self.tri_color_all = np.concatenate(self.tri_color)
        self.light = np.array(
            [room.width / 2, room.depth / 2, room.height / 2]
        )  # mid-height: floor and ceiling lit alike
        self._rays_cache: dict = {}

    def render(self, camera: Camera, pose: np.ndarray, noise_seed: int | None = None) -> Render:
        import open3d as o3d  # heavy: only when a room is rendered

        h, w = camera.height, camera.width
        key = (camera.fx, camera.fy, camera.cx, camera.cy, w, h)
        if key not in self._rays_cache:
            xs, ys = camera_rays(camera)
            self._rays_cache = {key: np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3)}
        local = self._rays_cache[key]
        R, t = pose[:3, :3], pose[:3, 3]
        dirs = (local @ R.T).astype(np.float32)  # camera z component stays 1 → t_hit is the depth
        rays = np.concatenate([np.broadcast_to(t.astype(np.float32), dirs.shape), dirs], axis=1)
        ans = self.scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays)), nthreads=0)
        t_hit = ans["t_hit"].numpy()
        hit = np.isfinite(t_hit)
        gid = ans["geometry_ids"].numpy().astype(np.int64)
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        normals = ans["primitive_normals"].numpy()
        obj = np.where(hit, self.gid_lut[np.where(hit, gid, 0)], 0)

        depth = np.where(hit, t_hit, 0).astype(np.float32)
        labels = np.where(hit, self.obj_class[obj], 0).astype(np.uint8)
        instances = np.where(hit, obj + 1, 0).astype(np.uint16)

        th = np.where(hit, t_hit, 0).astype(np.float32)
        pts = t.astype(np.float32) + dirs * th[:, None]
        base = self.tri_color_all[np.where(hit, self.tri_offset[obj] + prim, 0)]
        tex = self._texture(pts, obj)
        tolight = self.light.astype(np.float32) - pts
        dist = np.sqrt(np.einsum("ij,ij->i", tolight, tolight)) + 1e-9
        diffuse = np.abs(np.einsum("ij,ij->i", normals, tolight)) / dist
        shade = (self.ambient + (1 - self.ambient) * diffuse) * tex * hit
        rgb = base * shade[:, None]
        if noise_seed is not None:
            rgb += np.random.default_rng(noise_seed).standard_normal(rgb.shape, dtype=np.float32) * np.float32(0.01)
        rgb8 = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8).reshape(h, w, 3)
        return Render(rgb8, depth.reshape(h, w), labels.reshape(h, w), instances.reshape(h, w))

    def _texture(self, pts: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """Per-pixel brightness factor from each object's procedural texture (world-anchored,
        so a surface looks the same from every view)."""
        kind, scale, amp, d = self.obj_texture[obj], self.obj_scale[obj], self.obj_amp[obj], self.obj_dir[obj]
        q = pts / scale[:, None]
        along = (q * d).sum(axis=1)
        out = np.ones(len(pts), np.float32)
        m = kind == TEXTURE_ID["stripes"]
        out[m] = 1 + amp[m] * np.sign(np.sin(2 * np.pi * along[m]))
        m = kind == TEXTURE_ID["checker"]
        cells = np.floor(q[m] + 1e-4).astype(np.int64).sum(axis=1) & 1
        out[m] = 1 + amp[m] * (2 * cells - 1)
        m = kind == TEXTURE_ID["noise"]
        c = np.floor(q[m] + 1e-4).astype(np.int64)
        hsh = (c[:, 0] * 73856093) ^ (c[:, 1] * 19349663) ^ (c[:, 2] * 83492791) ^ (obj[m] * 2654435761)
        out[m] = 1 + amp[m] * ((hsh % 1000) / 500.0 - 1)
        m = kind == TEXTURE_ID["wood"]
        out[m] = 1 + amp[m] * np.sin(2 * np.pi * along[m] + 2.5 * np.sin(0.7 * q[m, 2] + along[m] * 0.3))
        return out.astype(np.float32)
