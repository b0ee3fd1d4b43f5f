"""Stimulus files and responses reveal nothing about the condition: bytes, chunks, names, headers."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from PIL import Image, ImageCms, PngImagePlugin

from generation.files import STIMULUS_MTIME
from generation.models import Stimulus, StimulusSet
from tests.conftest import database_url_for_test_db
from tests.generation.conftest import write_spec
from tests.servers import gunicorn

# Headers that differ per request or per file content by nature; everything else must be identical.
PER_RESPONSE = {"date", "etag", "content-length"}


def png_chunks(data: bytes) -> list[str]:
    """Chunk types in file order, consecutive IDATs collapsed (their count only reflects the data size)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8].decode("ascii")
        if not (chunks and chunks[-1] == kind == "IDAT"):
            chunks.append(kind)
        offset += 12 + length
    return chunks


def ihdr(data: bytes) -> tuple[int, int]:
    """(bit depth, colour type) of a PNG."""
    return data[24], data[25]


@pytest.mark.django_db
def test_imported_images_from_different_sources_differ_only_in_pixels(tmp_path, settings) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    # A photo-like JPEG with EXIF (camera, orientation, date) and an ICC profile.
    exif = Image.Exif()
    exif[0x010F] = "ACME Camera"  # Make
    exif[0x0132] = "2024:05:01 12:00:00"  # DateTime
    exif[0x0112] = 1  # Orientation
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (32, 24), (180, 40, 60)).save(
        folder / "photo.JPG", format="JPEG", exif=exif.tobytes(), icc_profile=icc, quality=95
    )
    # A style-transfer PNG that names its software in a tEXt chunk, with a palette and transparency.
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "neural-style (Gatys) VGG19")
    info.add_text("Comment", "content: cat.jpg, style: starry-night.jpg")
    Image.new("RGBA", (32, 24), (20, 90, 200, 255)).save(
        folder / "styled.png", format="PNG", pnginfo=info, dpi=(300, 300)
    )
    (tmp_path / "labels.csv").write_text("filename,condition\nphoto.JPG,human-art\nstyled.png,style-transfer\n")
    assert "tEXt" in png_chunks((folder / "styled.png").read_bytes())

    call_command(
        "import_stimuli", str(folder), "--labels", str(tmp_path / "labels.csv"), "--set", "mixed", stdout=io.StringIO()
    )

    stimulus_set = StimulusSet.objects.get(name="mixed")
    assert stimulus_set.image_format == "png"
    photo = stimulus_set.stimuli.get(condition="human-art")
    styled = stimulus_set.stimuli.get(condition="style-transfer")
    files = {s.condition: Path(settings.MEDIA_ROOT) / s.image.name for s in (photo, styled)}
    data = {condition: path.read_bytes() for condition, path in files.items()}
    # Same format, same chunk list, same bit depth and colour type, same extension in the URL.
    assert png_chunks(data["human-art"]) == png_chunks(data["style-transfer"]) == ["IHDR", "IDAT", "IEND"]
    assert ihdr(data["human-art"]) == ihdr(data["style-transfer"]) == (8, 2)  # 8-bit RGB
    assert {Path(s.image.name).suffix for s in (photo, styled)} == {".png"}
    assert photo.image.url.rsplit(".", 1)[1] == styled.image.url.rsplit(".", 1)[1] == "png"
    for stimulus in (photo, styled):
        assert stimulus.public_id in stimulus.image.name and "photo" not in stimulus.image.name
        assert stimulus.sha256 == hashlib.sha256(data[stimulus.condition]).hexdigest()
    for path in files.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            assert image.info == {}  # no text, no EXIF, no ICC, no dpi
            assert not image.getexif()
        assert int(path.stat().st_mtime) == STIMULUS_MTIME
    assert b"neural-style" not in data["style-transfer"] and b"ACME" not in data["human-art"]
    # The pixels are what came in (the ICC profile is sRGB, so applying it changes nothing visible).
    with Image.open(files["style-transfer"]) as image:
        assert image.getpixel((5, 5)) == (20, 90, 200)
    with Image.open(files["human-art"]) as image:
        assert all(abs(a - b) <= 6 for a, b in zip(image.getpixel((5, 5)), (180, 40, 60), strict=True))
    # The originals are known to the database only.
    assert photo.provenance["original_file"] == "photo.JPG"
    assert photo.provenance["original_format"] == "JPEG"
    assert photo.provenance["original_sha256"] == hashlib.sha256((folder / "photo.JPG").read_bytes()).hexdigest()
    assert "exif" in photo.provenance["original_metadata"]
    assert styled.provenance["original_metadata"] == ["Comment", "Software"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_stimulus_responses_carry_nothing_that_correlates_with_the_condition(tmp_path, tiny_model, settings) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml",
        tiny_model,
        classes=[1, 207],
        seeds=2,
        conditions=[
            {"name": "baseline"},
            {
                "name": "artistic",
                "perturbation": {"kind": "multiplicative", "epsilon": 0.5, "targets": "all", "seed": 1},
            },
        ],
    )
    started = time.time()
    call_command("render_set", str(spec), stdout=io.StringIO())
    stimuli = list(Stimulus.objects.filter(stimulus_set__name="test-set"))
    assert {s.condition for s in stimuli} == {"baseline", "artistic"} and len(stimuli) == 8
    # Rendering wrote the conditions one after the other, yet every file carries the same constant mtime.
    mtimes = {os.stat(Path(settings.MEDIA_ROOT) / s.image.name).st_mtime for s in stimuli}
    assert mtimes == {STIMULUS_MTIME} and started > STIMULUS_MTIME

    with gunicorn(
        log=tmp_path / "gunicorn.log",
        DATABASE_URL=database_url_for_test_db(),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        DEBUG="false",
        SERVE_MEDIA="true",
    ) as base:
        _compare_headers(base, stimuli, settings)


def _compare_headers(base: str, stimuli: list[Stimulus], settings) -> None:
    headers: dict[str, list[dict[str, str]]] = {"baseline": [], "artistic": []}
    for stimulus in stimuli:
        url = f"{base}{stimulus.image.url}"
        response = requests.get(url, timeout=10)
        assert response.status_code == 200, url
        assert response.content == (Path(settings.MEDIA_ROOT) / stimulus.image.name).read_bytes()
        values = {k.lower(): v for k, v in response.headers.items()}
        # Per-file values are functions of the bytes alone: a content-hash ETag and the length.
        assert values["etag"] == f'"{hashlib.sha256(response.content).hexdigest()[:32]}"'
        assert int(values["content-length"]) == len(response.content)
        assert "last-modified" not in values
        assert requests.get(url, headers={"If-None-Match": values["etag"]}, timeout=10).status_code == 304
        headers[stimulus.condition].append(values)

    names = {frozenset(h) for group in headers.values() for h in group}
    assert len(names) == 1, names  # identical header sets across every image of both conditions
    fixed = {
        condition: {frozenset((k, v) for k, v in h.items() if k not in PER_RESPONSE) for h in group}
        for condition, group in headers.items()
    }
    assert fixed["baseline"] == fixed["artistic"] and len(fixed["baseline"]) == 1
    assert dict(next(iter(fixed["baseline"])))["content-type"] == "image/png"
    # Only stimulus files are public under /media/; nothing else, no dot files, no folders.
    for path in ("/media/reports/x/ratings.csv", "/media/stimuli/", "/media/stimuli/.x.png.tmp", "/media/x.png"):
        assert requests.get(f"{base}{path}", timeout=10).status_code == 404, path


@pytest.mark.django_db
def test_the_admin_cannot_upload_a_stimulus_image_around_the_import(tmp_path, admin_client) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / "a.png")
    (tmp_path / "labels.csv").write_text("filename,condition\na.png,human-art\n")
    call_command(
        "import_stimuli", str(folder), "--labels", str(tmp_path / "labels.csv"), "--set", "s", stdout=io.StringIO()
    )
    stimulus = Stimulus.objects.get()
    page = admin_client.get(f"/admin/generation/stimulus/{stimulus.pk}/change/").content.decode()
    assert 'type="file"' not in page
    assert admin_client.get("/admin/generation/stimulus/add/").status_code == 403


@pytest.mark.django_db
def test_make_stimuli_uniform_fixes_files_of_older_versions(tmp_path, settings) -> None:
    from config.checks import check_private_files, check_stimulus_file_times

    media = Path(settings.MEDIA_ROOT)
    (media / "stimuli").mkdir(parents=True)
    # As an older import stored it: the source bytes, extension and metadata, and a fresh mtime.
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "neural-style (Gatys) VGG19")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(media / "stimuli" / "tok1.jpg", format="JPEG")
    Image.new("RGB", (8, 8), (7, 7, 7)).save(media / "stimuli" / "tok2.png", format="PNG", pnginfo=info)
    stimulus_set = StimulusSet.objects.create(name="old", source=StimulusSet.Source.IMPORTED)
    for token, condition, suffix in (("tok1", "human-art", "jpg"), ("tok2", "style-transfer", "png")):
        Stimulus.objects.create(
            stimulus_set=stimulus_set,
            public_id=token,
            condition=condition,
            recipe_id=token,
            image=f"stimuli/{token}.{suffix}",
            sha256="old",
        )
    (media / "reports" / "example-1").mkdir(parents=True)
    (media / "reports" / "example-1" / "ratings.csv").write_text("participant\n")
    assert [w.id for w in check_stimulus_file_times()] == ["project.W002"]
    assert [w.id for w in check_private_files()] == ["project.W001"]

    out = io.StringIO()
    call_command("make_stimuli_uniform", stdout=out)
    assert "re-encoded 2 imported image(s)" in out.getvalue()
    names = sorted(Stimulus.objects.values_list("image", flat=True))
    assert names == ["stimuli/tok1.png", "stimuli/tok2.png"]
    assert not (media / "stimuli" / "tok1.jpg").exists()
    for name in names:
        data = (media / name).read_bytes()
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"] and b"neural-style" not in data
    assert check_stimulus_file_times() == []
    call_command("make_stimuli_uniform", "old", stdout=(again := io.StringIO()))
    assert "re-encoded 0 imported image(s), re-dated 0 file(s)" in again.getvalue()
