"""Stimulus files as participants receive them: one format per set, no metadata, nothing that dates them.

Blinding depends on the bytes and the response headers saying nothing about the condition: a PNG text chunk
("Software: neural-style"), EXIF, an ICC profile, the source extension or a file time (rendering writes one
condition at a time) would each tell conditions apart. So every image that enters a set is re-encoded here,
and every stimulus file gets the same constant mtime, which also keeps a proxy's `Last-Modified` uniform.
No torch here: the web process imports this module.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

STIMULI_DIR = "stimuli"
# 2000-01-01T00:00:00Z: the mtime of every stimulus file, so no file time separates conditions.
STIMULUS_MTIME = 946_684_800
# The formats a set may hold; lossless only, so re-encoding never changes what participants see.
FORMATS = {"png": "image/png", "webp": "image/webp"}
DEFAULT_FORMAT = "png"


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    rgb: np.ndarray
    extension: str
    original: dict[str, object] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def encode_rgb(rgb: np.ndarray, *, image_format: str = DEFAULT_FORMAT) -> bytes:
    """RGB uint8 → file bytes with no ancillary chunks (Pillow adds none when the image carries no info)."""
    if image_format not in FORMATS:
        raise ValueError(f"unknown stimulus format {image_format!r}; use one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    if image_format == "png":
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.save(buffer, format="WEBP", lossless=True, quality=100, method=4, exif=b"", icc_profile=None)
    return buffer.getvalue()


def _to_srgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """Apply an embedded ICC profile (so colours look as intended once the profile is dropped)."""
    profile = image.info.get("icc_profile")
    if not profile:
        return image, False
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(
            image.convert("RGB"), source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image, False  # a broken profile: keep the numbers as they are, still drop the profile
    return converted, True


def normalize_image(data: bytes, *, image_format: str = DEFAULT_FORMAT) -> EncodedImage:
    """Decode any image Pillow reads and re-encode it in the set's format as plain 8-bit RGB.

    EXIF orientation and an ICC profile are applied to the pixels, transparency is flattened onto white,
    and nothing else survives; `original` records what came in (kept only in the database).
    """
    with Image.open(io.BytesIO(data)) as opened:
        original = {
            "format": opened.format or "",
            "mode": opened.mode,
            "size": list(opened.size),
            "metadata": sorted(k for k in opened.info if k not in {"dpi", "gamma", "aspect"}),
        }
        image = ImageOps.exif_transpose(opened) or opened
        image.load()
        image, icc_applied = _to_srgb(image)
        if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            flat.alpha_composite(rgba)
            image = flat
        elif image.mode.startswith(("I", "F")):  # 16-bit or float greyscale: scale to 8 bits, do not clip
            values = np.asarray(image, dtype=np.float64)
            top = 65535.0 if values.max() > 255 else 255.0
            image = Image.fromarray(np.clip(values / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    original["icc_applied"] = icc_applied
    return EncodedImage(
        data=encode_rgb(rgb, image_format=image_format), rgb=rgb, extension=image_format, original=original
    )


def write_stimulus_file(path: Path, data: bytes) -> None:
    """Write atomically (readers never see half a file) with the constant stimulus mtime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.utime(tmp, (STIMULUS_MTIME, STIMULUS_MTIME))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def content_type_for(name: str) -> str | None:
    return FORMATS.get(Path(name).suffix.lower().lstrip("."))
