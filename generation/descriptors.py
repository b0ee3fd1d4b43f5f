"""Low-level image descriptors, recorded per stimulus as covariates for the analysis.

All take an RGB uint8 array (H, W, 3); luminance is Rec. 601 luma L = 0.299R + 0.587G + 0.114B.
- colorfulness: Hasler & Süsstrunk (2003), M = sd_rgyb + 0.3·μ_rgyb with rg = R - G,
  yb = (R + G)/2 - B on 0..255, sd_rgyb = √(sd_rg² + sd_yb²), μ_rgyb = √(μ_rg² + μ_yb²).
- saturation: mean HSV saturation (max - min)/max per pixel (0 where max = 0), in [0, 1].
- rms_contrast: standard deviation of L/255, in [0, 0.5].
- luminance_entropy: Shannon entropy (bits) of the 256-bin histogram of 8-bit L, in [0, 8].
- edge_density: share of pixels whose Sobel gradient magnitude of L/255, divided by its maximum
  4√2, exceeds 0.1 (border pixels excluded).
- compression_ratio: bytes of the image as PNG (Pillow, level 6) / raw RGB bytes; higher = more
  complex. For rendered stimuli the PNG is the file itself.

The names are analysis.schema.DESCRIPTOR_COLUMNS (the export and the analysis read them from there); `describe`
returns them in that order (tested).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

EDGE_THRESHOLD = 0.1


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def describe(rgb: np.ndarray, *, png_size: int | None = None) -> dict[str, float]:
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    height, width = rgb.shape[:2]
    channels = rgb.astype(np.float32)
    r, g, b = channels[..., 0], channels[..., 1], channels[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    colorfulness = np.hypot(rg.std(dtype=np.float64), yb.std(dtype=np.float64)) + 0.3 * np.hypot(
        rg.mean(dtype=np.float64), yb.mean(dtype=np.float64)
    )

    high = np.maximum(np.maximum(r, g), b)
    spread = high - np.minimum(np.minimum(r, g), b)
    saturation = np.divide(spread, high, out=np.zeros_like(high), where=high > 0).mean(dtype=np.float64)

    luma = (0.299 * r + 0.587 * g + 0.114 * b) / np.float32(255.0)
    rms_contrast = luma.std(dtype=np.float64)

    histogram = np.bincount(np.rint(luma * 255).astype(np.uint8).ravel(), minlength=256)
    p = histogram[histogram > 0] / histogram.sum()
    entropy = float(-(p * np.log2(p)).sum()) + 0.0

    edge_density = 0.0
    if height >= 3 and width >= 3:
        # Sobel as separable [1 2 1] smoothing and [-1 0 1] differences.
        smooth_rows = luma[:-2] + 2 * luma[1:-1] + luma[2:]
        smooth_cols = luma[:, :-2] + 2 * luma[:, 1:-1] + luma[:, 2:]
        gx = smooth_rows[:, 2:] - smooth_rows[:, :-2]
        gy = smooth_cols[2:] - smooth_cols[:-2]
        magnitude = np.sqrt(gx * gx + gy * gy) / np.float32(4 * np.sqrt(2))
        edge_density = float((magnitude > EDGE_THRESHOLD).mean())

    if png_size is None:
        png_size = len(png_bytes(rgb))
    return {
        "colorfulness": round(float(colorfulness), 6),
        "saturation": round(float(saturation), 6),
        "rms_contrast": round(float(rms_contrast), 6),
        "luminance_entropy": round(entropy, 6),
        "edge_density": round(edge_density, 6),
        "compression_ratio": round(png_size / (height * width * 3), 6),
    }
