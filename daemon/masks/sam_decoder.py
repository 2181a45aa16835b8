"""SAM's mask decoder restructured for hundreds of point prompts on one image embedding.

Same weights and the same maths as segment_anything's `MaskDecoder` + `TwoWayTransformer`
(multimask output); only the order of the arithmetic changes, so the logits agree with the
stock decoder to float rounding (~1e-5). What it saves, per prompt:

- The first layer sees the same image tokens for every prompt (embedding + no-mask
  embedding), so their key/value/query projections are computed once per image.
- Later layers see per-prompt image tokens but only 7 prompt tokens. Instead of projecting
  4096 image tokens per prompt, the projections are folded into the prompt side: the
  token-to-image scores are (q·W_k)·K (the key bias adds a constant to each softmax row and
  drops out), the values are (P·V)·W_vᵀ + b_v (softmax rows sum to one); the image-to-token
  scores are K·(W_qᵀ·k) + b_q·k and the output projection is folded into the 7 values.
  The residual adds ride in the matmuls (baddbmm).
- The final token-to-image attention runs only for the tokens that are read (IoU token and
  the three multimask tokens).
- Upscaling (2×2 transposed convolutions, LayerNorm2d, GELU) and the hypernetwork product
  run only for prompts the caller asks for, and only over the rows and columns of the
  256×256 low-resolution grid the caller needs: a 2×2 stride-2 transposed convolution maps
  each input cell to its own output cells, so the cut is exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Decoder outputs read for multimask output (segment_anything's `mask_slice = slice(1, None)`).
MULTIMASK = slice(1, None)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """B×T×(h·d) → B×T×h×d (a view)."""
    return x.view(*x.shape[:-1], heads, x.shape[-1] // heads)


class PromptDecoder:
    """The mask decoder of one `Sam`, bound to one image embedding (1×C×64×64)."""

    def __init__(self, sam, embedding: torch.Tensor):
        self.sam = sam
        self.dec = dec = sam.mask_decoder
        self.tr = tr = dec.transformer
        pe = sam.prompt_encoder.get_dense_pe()  # 1×C×h×w
        self.grid = tuple(pe.shape[-2:])
        dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        self.pe = pe.flatten(2)[0].T.contiguous()  # N×C
        self.keys0 = (embedding + dense).flatten(2)[0].T.contiguous()  # N×C: what every prompt sees first
        first = tr.layers[0]
        self.kpe0 = self.keys0 + self.pe
        t2i = first.cross_attn_token_to_image
        self._t2i0 = (t2i.k_proj(self.kpe0), t2i.v_proj(self.keys0))
        # Output tokens the callers read: the IoU token and the multimask tokens.
        n_mask = dec.num_mask_tokens
        self._read = torch.tensor([0] + list(range(1, 1 + n_mask))[MULTIMASK])

    # --- attention, restructured -------------------------------------------------------

    @staticmethod
    def _t2i_shared(a, q: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Tokens (B×T×C) attending to image tokens whose projections are shared (N×d)."""
        kp, vp = kv
        b, t, _ = q.shape
        h = a.num_heads
        qp = _heads(a.q_proj(q), h)  # B×T×h×dh
        dh = qp.shape[-1]
        qp = qp.permute(2, 0, 1, 3).reshape(h, b * t, dh) / math.sqrt(dh)
        kh = _heads(kp, h).permute(1, 2, 0)  # h×dh×N
        vh = _heads(vp, h).transpose(0, 1)  # h×N×dh
        attn = torch.softmax(torch.bmm(qp, kh), dim=-1)
        out = torch.bmm(attn, vh).view(h, b, t, dh).permute(1, 2, 0, 3).reshape(b, t, h * dh)
        return a.out_proj(out)

    @staticmethod
    def _fold(x: torch.Tensor, proj) -> torch.Tensor:
        """Prompt-side heads x (B×T×h×dh) through the image side's projection, scaled by
        1/√dh: B×hT×C, so that scores = fold · image tokens."""
        b, t, h, dh = x.shape
        w = proj.weight.view(h, dh, -1) / math.sqrt(dh)
        return torch.einsum("bthd,hdc->bhtc", x, w).reshape(b, h * t, -1)

    @classmethod
    def _t2i(cls, a, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Tokens (B×T×C) attending to per-prompt image tokens k, v (B×N×C)."""
        b, t, c = q.shape
        h = a.num_heads
        qp = _heads(a.q_proj(q), h)  # B×T×h×dh
        dh = qp.shape[-1]
        fold = cls._fold(qp, a.k_proj)
        attn = torch.softmax(torch.bmm(fold, k.transpose(1, 2)), dim=-1)  # B×hT×N
        pv = torch.bmm(attn, v).view(b, h, t, c)
        wv = a.v_proj.weight.view(h, dh, c)
        out = torch.einsum("bhtc,hdc->bthd", pv, wv) + a.v_proj.bias.view(h, dh)
        return a.out_proj(out.reshape(b, t, h * dh))

    @classmethod
    def _i2t(cls, a, kpe: torch.Tensor, keys: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Image tokens attending to their prompt's T tokens k, v (B×T×C): keys + attention
        output (B×N×C). kpe/keys are N×C when every prompt shares them, else B×N×C."""
        b, t, c = k.shape
        h = a.num_heads
        kt = _heads(a.k_proj(k), h)  # B×T×h×dh
        dh = kt.shape[-1]
        fold = cls._fold(kt, a.q_proj)
        bias = torch.einsum("bthd,hd->bht", kt, a.q_proj.bias.view(h, dh) / math.sqrt(dh))
        scores = torch.matmul(fold, kpe.transpose(-1, -2)).view(b, h, t, -1) + bias.unsqueeze(-1)
        # softmax over the T tokens of each head: dim 2, so the kernel runs along N
        attn = torch.softmax(scores, dim=2).view(b, h * t, -1)
        vt = _heads(a.v_proj(v), h)  # B×T×h×dh
        wo = a.out_proj.weight.view(c, h, dh)
        # output projection folded into the values; its bias split over the heads (each
        # head's weights sum to one)
        u = (torch.einsum("bthd,chd->bhtc", vt, wo) + a.out_proj.bias / h).reshape(b, h * t, c)
        return torch.baddbmm(keys, attn.transpose(1, 2), u)

    # --- the decoder ------------------------------------------------------------------

    def transformer(self, sparse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse prompt embeddings (B×S×C) → the read output tokens (B×4×C: IoU token,
        then the multimask tokens) and the prompts' image tokens (B×N×C)."""
        dec = self.dec
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse], dim=1)
        queries, qpe, keys = tokens, tokens, None
        for layer in self.tr.layers:
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries, k=queries, v=queries)
            else:
                q = queries + qpe
                queries = queries + layer.self_attn(q=q, k=q, v=queries)
            queries = layer.norm1(queries)
            if keys is None:
                attn = self._t2i_shared(layer.cross_attn_token_to_image, queries + qpe, self._t2i0)
            else:
                kpe = keys + self.pe
                attn = self._t2i(layer.cross_attn_token_to_image, queries + qpe, kpe, keys)
            queries = layer.norm2(queries + attn)
            queries = layer.norm3(queries + layer.mlp(queries))
            if keys is None:
                if layer is not self.tr.layers[0]:
                    raise AssertionError("shared image tokens only in the first layer")
                kpe, keys = self.kpe0, self.keys0
            keys = layer.norm4(self._i2t(layer.cross_attn_image_to_token, kpe, keys, queries + qpe, queries))
        read = self._read
        q = (queries + qpe)[:, read]
        attn = self._t2i(self.tr.final_attn_token_to_image, q, keys + self.pe, keys)
        hs = self.tr.norm_final_attn(queries[:, read] + attn)
        return hs, keys

    def iou(self, hs: torch.Tensor) -> torch.Tensor:
        """Predicted IoU of the multimask outputs: B×3."""
        return self.dec.iou_prediction_head(hs[:, 0])[:, MULTIMASK]

    def masks(
        self, hs: torch.Tensor, keys: torch.Tensor, rows: int, cols: int, which: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Low-resolution mask logits of the multimask outputs, B×3×rows'×cols' with rows' ≥
        rows and cols' ≥ cols the first cells of the 256×256 grid (whole 4×4 blocks).
        `which` (B indices) picks the prompts of hs and keys: one gather of only the cells used."""
        dec = self.dec
        c = keys.shape[-1]
        gh, gw = self.grid
        up1, norm, act1, up2, act2 = dec.output_upscaling
        scale = 4  # two stride-2 transposed convolutions
        r, w = min(gh, -(-rows // scale)), min(gw, -(-cols // scale))
        x = keys.view(-1, gh, gw, c)
        x = x[:, :r, :w] if which is None else x[which, :r, :w]
        hs = hs if which is None else hs[which]
        b = x.shape[0]
        # 2×2 stride-2 transposed convolution = one matmul per input cell: out[..., a, b, o].
        w1 = up1.weight.permute(0, 2, 3, 1).reshape(c, -1)
        y = torch.addmm(up1.bias.repeat(4), x.reshape(-1, c), w1).view(b, r, w, 2, 2, -1)
        y = act1(F.layer_norm(y, y.shape[-1:], norm.weight, norm.bias, norm.eps))
        c1 = y.shape[-1]
        w2 = up2.weight.permute(0, 2, 3, 1).reshape(c1, -1)
        z = act2(torch.addmm(up2.bias.repeat(4), y.reshape(-1, c1), w2)).view(b, r, w, 2, 2, 2, 2, -1)
        hyper = torch.stack(
            [mlp(hs[:, i + 1]) for i, mlp in enumerate(list(dec.output_hypernetworks_mlps)[MULTIMASK])], dim=1
        )  # B×3×c2
        m = torch.bmm(z.view(b, -1, z.shape[-1]), hyper.transpose(1, 2))  # B×(cells)×3
        # cells are (row i, col j, a, b, a2, b2): pixel (4i + 2a + a2, 4j + 2b + b2)
        m = m.view(b, r, w, 2, 2, 2, 2, 3).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return m.reshape(b, 3, r * scale, w * scale)


def check_decoder(sam) -> None:
    """Raise ValueError unless `sam` has segment_anything's stock decoder layout."""
    from segment_anything.modeling.mask_decoder import MaskDecoder  # heavy: with the model
    from segment_anything.modeling.transformer import TwoWayTransformer  # heavy: with the model

    dec = sam.mask_decoder
    ok = (
        type(dec) is MaskDecoder
        and type(dec.transformer) is TwoWayTransformer
        and len(dec.output_upscaling) == 5
        and dec.num_mask_tokens == 4
        and dec.transformer.layers[0].skip_first_layer_pe
    )
    if not ok:
        raise ValueError(
            "the fast SAM mask generator needs segment_anything's MaskDecoder with a "
            "TwoWayTransformer; use the reference generator for this model"
        )
