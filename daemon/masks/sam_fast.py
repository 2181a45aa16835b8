"""A faster automatic mask generator over segment_anything's own `Sam`: the masks of
`SamAutomaticMaskGenerator.generate`, with its parameters (crops and `min_mask_region_area`
included), several times faster.

Per crop, as the reference: one image embedding, the prompt grid, the predicted-IoU and
stability filters, boxes, the crop-edge filter, box NMS; then NMS across crops and the
small-region clean-up. What changes is the order of the work:

- every prompt of a batch goes through `PromptDecoder` (sam_decoder.py: the decoder with its
  per-image work shared; the same maths to float rounding), and the predicted-IoU filter runs
  before any mask exists: the scores come from the IoU token alone, so filtering there is exact;
- only masks that pass are upscaled, only over the part of the 256×256 grid that maps into
  the image, and upsampled by the reference's own two bilinear steps (sam_steps.upsample);
- stability, boxes and the crop-edge filter as the reference computes them; candidates wait
  for NMS bit-packed, and only survivors are unpacked: no RLE lists, no `MaskData.cat` deep
  copies;
- `torch.inference_mode` throughout.

`FastOptions` names what may deviate from the reference; its defaults do not.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from regiond.core import rle
from regiond.core.timing import StageTimer

#: FastOptions.stability values: where stability, boxes and box NMS are computed.
STABILITY_MODES = ("full", "lowres")
#: FastOptions.encoder values (see sam_encoder.py).
ENCODER_MODES = ("fp32", "int8", "bf16", "fp16")


@dataclass(frozen=True)
class FastOptions:
    """How the fast generator batches, and where it may deviate from the reference.

    batch      prompts per decoder pass (about 20 MB of memory per prompt); small batches keep
               each prompt's 4096×256 image tokens in cache (8: 2× faster than 64, bench/amg.py)
    threads    torch intra-op threads for everything after the image embedding (0, the
               default: torch's setting). On free cores two threads ran the decoder 1.7×
               faster than one; on cores other jobs keep busy each of the decoder's many small
               multi-threaded ops waits for the busy core, and one thread ran it about 2×
               faster than two (docs/benchmarks.md, SAM mask generation). Exact either way.
    stability  "full" (default, exact): stability score, boxes and box NMS on full-resolution
               logits, as segment-anything; "lowres": on the 256×256 decoder logits, and only
               the masks that survive box NMS are upsampled (faster; changes which masks
               survive: measured in docs/benchmarks.md)
    encoder    image-encoder precision: "fp32" (default, exact), "int8" (dynamic int8
               quantisation of its linear layers; CPU), "bf16" (autocast), "fp16" (autocast;
               CUDA only)
    upsample_chunk  masks upsampled to full resolution at once (bounds memory)
    """

    batch: int = 8
    threads: int = 0
    stability: str = "full"
    encoder: str = "fp32"
    upsample_chunk: int = 16

    def __post_init__(self):
        if self.stability not in STABILITY_MODES:
            raise ValueError(f"stability must be one of {STABILITY_MODES}, got {self.stability!r}")
        if self.encoder not in ENCODER_MODES:
            raise ValueError(f"encoder must be one of {ENCODER_MODES}, got {self.encoder!r}")
        if self.batch < 1 or self.upsample_chunk < 1:
            raise ValueError("batch and upsample_chunk must be at least 1")
        if self.threads < 0:
            raise ValueError("threads must be 0 (torch's setting) or more")


@contextmanager
def _threads(n: int):
    """torch's intra-op threads set to n (0: unchanged) inside the block."""
    import torch  # heavy: with the model

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(before)


@dataclass
class Generated:
    """N masks at the image size and what the reference records about each, in its order."""

    masks: np.ndarray  # N×H×W bool
    iou: np.ndarray  # N float32 predicted IoU
    stability: np.ndarray  # N float32 stability score
    boxes: np.ndarray  # N×4 int64 XYXY, inclusive max (segment-anything's convention)
    points: np.ndarray  # N×2 float64 prompt, image pixels
    crop_boxes: np.ndarray  # N×4 int64 XYXY

    def take(self, keep) -> Generated:
        keep = np.asarray(keep, dtype=np.int64)
        return Generated(
            self.masks[keep],
            self.iou[keep],
            self.stability[keep],
            self.boxes[keep],
            self.points[keep],
            self.crop_boxes[keep],
        )

    def records(self, output_mode: str = "binary_mask") -> list[dict]:
        """The list of dicts `SamAutomaticMaskGenerator.generate` returns."""
        out = []
        for i, m in enumerate(self.masks):
            seg = m
            if output_mode != "binary_mask":
                seg = {"size": list(m.shape), "counts": rle.encode(m).tolist()}
                if output_mode == "coco_rle":
                    from segment_anything.utils.amg import coco_encode_rle  # pycocotools: this mode only

                    seg = coco_encode_rle(seg)
            x0, y0, x1, y1 = self.boxes[i].tolist()
            cx0, cy0, cx1, cy1 = self.crop_boxes[i].tolist()
            out.append(
                {
                    "segmentation": seg,
                    "area": int(m.sum()),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "predicted_iou": float(self.iou[i]),
                    "point_coords": [self.points[i].tolist()],
                    "stability_score": float(self.stability[i]),
                    "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
                }
            )
        return out


class FastMaskGenerator:
    """`SamAutomaticMaskGenerator`'s parameters and output, several times faster."""

    def __init__(self, sam, config, options: FastOptions | None = None, output_mode: str = "binary_mask"):
        from segment_anything.utils.amg import build_all_layer_point_grids  # heavy: with the model
        from segment_anything.utils.transforms import ResizeLongestSide  # heavy: with the model

        from regiond.masks.sam_decoder import check_decoder
        from regiond.masks.sam_encoder import build_encoder

        check_decoder(sam)
        if output_mode not in ("binary_mask", "uncompressed_rle", "coco_rle"):
            raise ValueError(f"unknown output_mode {output_mode!r}")
        self.model = sam
        self.config = config
        self.options = options or FastOptions()
        self.output_mode = output_mode
        self.point_grids = build_all_layer_point_grids(
            config.points_per_side, config.crop_n_layers, config.crop_n_points_downscale_factor
        )
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        self.encode = build_encoder(sam, self.options.encoder)
        self.times = StageTimer()

    def generate(self, image: np.ndarray) -> list[dict]:
        """The records `SamAutomaticMaskGenerator.generate` returns, for an H×W×3 uint8 image."""
        return self.generate_masks(image).records(self.output_mode)

    def generate_masks(self, image: np.ndarray) -> Generated:
        import torch  # heavy: with the model
        from segment_anything.utils.amg import generate_crop_boxes  # heavy: with the model
        from torchvision.ops.boxes import batched_nms  # heavy: with the model

        self.times = StageTimer()
        c = self.config
        h, w = image.shape[:2]
        crop_boxes, layers = generate_crop_boxes((h, w), c.crop_n_layers, c.crop_overlap_ratio)
        with torch.inference_mode():
            crops = [self._crop(image, box, layer) for box, layer in zip(crop_boxes, layers)]
        with self.times.stage("output"):
            n = sum(len(m) for m, *_ in crops)
            out = Generated(
                np.zeros((n, h, w), bool), *(np.concatenate([part[i] for part in crops]) for i in range(1, 6))
            )
            i = 0
            for (masks, *_), (x0, y0, x1, y1) in zip(crops, crop_boxes):
                out.masks[i : i + len(masks), y0:y1, x0:x1] = masks
                i += len(masks)
        if len(crop_boxes) > 1 and n:
            with self.times.stage("nms"):  # duplicates across crops: prefer smaller crops
                cb = torch.as_tensor(out.crop_boxes)
                area = (cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1])
                keep = batched_nms(
                    torch.as_tensor(out.boxes).float(), 1 / area, torch.zeros(n), iou_threshold=c.crop_nms_thresh
                )
                out = out.take(keep.numpy())
        if c.min_mask_region_area > 0 and len(out.masks):
            with self.times.stage("small regions"):
                out = self._small_regions(out, c.min_mask_region_area, max(c.box_nms_thresh, c.crop_nms_thresh))
        return out

    def _crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> tuple:
        """One crop's masks after its box NMS, best first: (masks at the crop size, iou,
        stability, boxes and points in image pixels, crop boxes)."""
        import torch  # heavy: with the model

        sam = self.model
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        with self.times.stage("embedding"):
            x = torch.as_tensor(self.transform.apply_image(crop), device=sam.device)
            x = x.permute(2, 0, 1).contiguous()[None]
            input_size = tuple(x.shape[-2:])
            embedding = self.encode(sam.preprocess(x))
        with _threads(self.options.threads):
            return self._masks(
                embedding, input_size, crop.shape[:2], crop_box, layer, [0, 0, image.shape[1], image.shape[0]]
            )

    def _masks(
        self,
        embedding,
        input_size: tuple[int, int],
        size: tuple[int, int],
        crop_box: list[int],
        layer: int,
        orig_box: list[int],
    ) -> tuple:
        """_crop after the embedding."""
        import torch  # heavy: with the model
        from segment_anything.utils.amg import is_box_near_crop_edge  # heavy: with the model
        from torchvision.ops.boxes import batched_nms  # heavy: with the model

        from regiond.masks import sam_steps as steps
        from regiond.masks.sam_decoder import PromptDecoder

        c, o, sam = self.config, self.options, self.model
        x0, y0 = crop_box[:2]
        with self.times.stage("decoder"):
            dec = PromptDecoder(sam, embedding)
            points = self.point_grids[layer] * np.array(size)[None, ::-1]
            coords = torch.as_tensor(self.transform.apply_coords(points, size), device=sam.device)
            labels = torch.ones(len(points), dtype=torch.int, device=sam.device)
            sparse, _ = sam.prompt_encoder(points=(coords[:, None, :], labels[:, None]), boxes=None, masks=None)
        rows, cols = steps.cells_needed(input_size[0]), steps.cells_needed(input_size[1])
        lowres = o.stability == "lowres"
        thr, offset = sam.mask_threshold, c.stability_score_offset
        kept: dict[str, list] = {k: [] for k in ("mask", "iou", "stability", "box", "prompt")}
        for b0 in range(0, len(points), o.batch):
            with self.times.stage("decoder"):
                hs, keys = dec.transformer(sparse[b0 : b0 + o.batch])
                iou = dec.iou(hs)
                passed = iou > c.pred_iou_thresh if c.pred_iou_thresh > 0.0 else torch.ones_like(iou, dtype=torch.bool)
                prompts = passed.any(1).nonzero()[:, 0]
                if len(prompts) == 0:
                    continue
                sel = passed[prompts].flatten()
                low = dec.masks(hs, keys, rows, cols, prompts).flatten(0, 1)[sel]
                iou = iou[prompts].flatten()[sel]
                prompt = (prompts[:, None] + b0).expand(-1, 3).flatten()[sel]
            for a in range(0, len(low), o.upsample_chunk):
                part = low[a : a + o.upsample_chunk]
                if lowres:
                    with self.times.stage("filters"):
                        cells = part[:, : -(-input_size[0] // 4), : -(-input_size[1] // 4)]
                        stab = steps.stability(cells, thr, offset)
                        boxes = steps.lowres_boxes(cells, thr, input_size, size)
                        masks = part
                else:
                    with self.times.stage("upsampling"):
                        logits = steps.upsample(part, input_size, size)
                    with self.times.stage("filters"):
                        stab = steps.stability(logits, thr, offset)
                        masks = logits > thr
                        boxes = steps.mask_boxes(masks)
                with self.times.stage("filters"):
                    ok = (
                        stab >= c.stability_score_thresh
                        if c.stability_score_thresh > 0.0
                        else torch.ones_like(stab, dtype=torch.bool)
                    )
                    ok &= ~is_box_near_crop_edge(boxes, crop_box, orig_box)
                    ok = ok.nonzero()[:, 0]
                    kept["mask"].extend(masks[ok] if lowres else steps.pack(masks[ok]))
                    for key, v in (
                        ("iou", iou[a : a + o.upsample_chunk]),
                        ("stability", stab),
                        ("box", boxes),
                        ("prompt", prompt[a : a + o.upsample_chunk]),
                    ):
                        kept[key].append(v[ok])
        with self.times.stage("nms"):
            if not kept["mask"]:
                return (
                    np.zeros((0, *size), bool),
                    np.zeros(0, np.float32),
                    np.zeros(0, np.float32),
                    np.zeros((0, 4), np.int64),
                    np.zeros((0, 2)),
                    np.zeros((0, 4), np.int64),
                )
            iou, stab, boxes = (torch.cat(kept[k]) for k in ("iou", "stability", "box"))
            prompt = torch.cat(kept["prompt"])
            keep = batched_nms(boxes.float(), iou, torch.zeros(len(iou)), iou_threshold=c.box_nms_thresh)
        with self.times.stage("output"):
            if lowres:  # survivors only: exact masks, their stability and boxes
                logits = steps.upsample(torch.stack([kept["mask"][i] for i in keep.tolist()]), input_size, size)
                stab, masks = steps.stability(logits, thr, offset), logits > thr
                boxes = steps.mask_boxes(masks)
                masks = masks.numpy()
            else:
                stab, boxes = stab[keep], boxes[keep]
                masks = np.stack([steps.unpack(kept["mask"][i], size) for i in keep.tolist()])
            shift = np.array([x0, y0, x0, y0])
            return (
                masks,
                iou[keep].numpy(),
                stab.numpy(),
                boxes.numpy() + shift,
                points[prompt[keep].numpy()] + shift[:2],
                np.tile(np.array(crop_box), (len(keep), 1)),
            )

    @staticmethod
    def _small_regions(out: Generated, min_area: int, nms_thresh: float) -> Generated:
        """segment-anything's postprocess_small_regions: clean every mask, then NMS preferring
        masks the clean-up left unchanged; changed survivors get their new boxes."""
        import torch  # heavy: with the model
        from torchvision.ops.boxes import batched_nms  # heavy: with the model

        from regiond.masks import sam_steps as steps

        masks, unchanged = steps.small_regions(out.masks, min_area)
        boxes = steps.mask_boxes(torch.from_numpy(masks))
        keep = batched_nms(
            boxes.float(),
            torch.as_tensor(unchanged, dtype=torch.float32),
            torch.zeros(len(masks)),
            iou_threshold=nms_thresh,
        ).numpy()
        out = out.take(keep)
        out.masks = masks[keep]
        changed = ~unchanged[keep]
        out.boxes[changed] = boxes.numpy()[keep][changed]
        return out
