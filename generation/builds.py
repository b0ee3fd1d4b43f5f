"""Stimulus sets from the browser: an uploaded design file rendered by a task, or a ZIP of images imported.

The same services as the command line do the work (`render_set`: set_plan, stimulus_set_prepare,
render_jobs_create, render_job_dispatch; `import_stimuli`: stimuli_import), so a set made in the admin is the
set the commands would make, with the same error messages. Planning against the model needs torch, so it
happens in the task, never in the web request; the request only parses and checks the file.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum

from config.errors import SetupError
from generation.models import BuildStatus, RenderJob, StimulusSet
from generation.spec import StimulusSpec, parse_spec, spec_from_text

logger = logging.getLogger(__name__)

MAX_SPEC_BYTES = 256 * 1024
# A ZIP is unpacked to a temporary folder before import; these bound what an upload can make us write.
MAX_ZIP_FILES = 5000
MAX_ZIP_BYTES = 2 * 1024**3


def spec_from_upload(*, data: bytes, file_name: str) -> StimulusSpec:
    """Parse an uploaded design file with the messages `render_set` gives for the same file."""
    if len(data) > MAX_SPEC_BYTES:
        raise SetupError(f"spec {file_name} is larger than {MAX_SPEC_BYTES // 1024} KB; a design file is short text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SetupError(f"spec {file_name} is not UTF-8 text (is it the YAML design file?)") from None
    return spec_from_text(text, source=file_name)


def stimulus_set_request_build(*, spec: StimulusSpec) -> StimulusSet:
    """Record the set with its design and queue the task that plans and renders it (see stimulus_set_build)."""
    from config.background import uses_broker
    from config.celery import require_broker

    if uses_broker():
        require_broker()  # one clear line now rather than a failed hand-off after the set is recorded
    with transaction.atomic():
        stimulus_set, created = StimulusSet.objects.select_for_update().get_or_create(
            name=spec.name,
            defaults={"source": StimulusSet.Source.RENDERED, "spec": spec.raw, "description": spec.description},
        )
        if not created:
            if stimulus_set.source != StimulusSet.Source.RENDERED:
                raise SetupError(f"set {spec.name!r} holds imported images; choose another name")
            if stimulus_set.build_status in {BuildStatus.QUEUED, BuildStatus.PLANNING}:
                raise SetupError(f"set {spec.name!r} is being planned already; wait for it to finish")
            stimulus_set.spec = spec.raw
        stimulus_set.build_status = BuildStatus.QUEUED
        stimulus_set.build_error = ""
        stimulus_set.save(update_fields=["spec", "build_status", "build_error"])
        transaction.on_commit(lambda: _dispatch_build(stimulus_set.pk))
    return stimulus_set


def _dispatch_build(set_id: int) -> None:
    from config.background import task_submit
    from generation.tasks import stimulus_set_build_task

    task_submit(stimulus_set_build_task, set_id)


def stimulus_set_build(*, set_id: int) -> None:
    """Plan the set's stored design against its model, create its render jobs and dispatch them.

    Render jobs run on the workers (GPU queue if configured) or, without a broker, here, one after another;
    their rows carry the progress. A planning error (weights missing, class out of range) lands in build_error.
    """
    from config.celery import require_broker
    from generation.services import (
        render_job_dispatch,
        render_jobs_abandon_stale,
        render_jobs_create,
        runs_in_process,
        set_plan,
        stimulus_set_prepare,
    )

    rows = StimulusSet.objects.filter(pk=set_id)
    rows.update(build_status=BuildStatus.PLANNING, build_error="")
    try:
        stimulus_set = rows.get()
        spec = parse_spec(stimulus_set.spec)
        plan = set_plan(spec=spec)
        in_process = runs_in_process()
        if not in_process:
            require_broker()
        stimulus_set, todo = stimulus_set_prepare(spec=spec, plan=plan)
        # The record was made before the model was known; fill in what render_set records at creation.
        rows.filter(weights_sha256="").update(
            model_id=plan.info.model_id, weights_sha256=plan.info.sha256, untrained=plan.info.untrained
        )
        if in_process:
            render_jobs_abandon_stale(stimulus_set=stimulus_set)
        # Failed jobs of an earlier run are superseded: this plan holds whatever they left unrendered.
        stimulus_set.render_jobs.filter(status=RenderJob.Status.FAILED).delete()
        jobs = render_jobs_create(stimulus_set=stimulus_set, items=todo, model_folder=plan.info.folder)
    except SetupError as exc:
        rows.update(build_status=BuildStatus.FAILED, build_error=str(exc))
        return
    except Exception as exc:  # shown in the admin, where the researcher waits for it
        logger.exception("planning stimulus set %s failed", set_id)
        rows.update(build_status=BuildStatus.FAILED, build_error=f"{type(exc).__name__}: {exc}")
        return
    rows.update(build_status=BuildStatus.RENDERING)
    for job in jobs:
        render_job_dispatch(job=job)


@dataclass(frozen=True)
class BuildState:
    state: str  # queued | planning | rendering | done | failed | imported | "" (made by a command)
    done: int
    total: int
    error: str

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "done": self.done, "total": self.total, "error": self.error}


def stimulus_set_build_state(*, stimulus_set: StimulusSet) -> BuildState:
    """One aggregate query over the set's render jobs; the build status says what came before them."""
    jobs = stimulus_set.render_jobs.aggregate(
        total=Sum("total"),
        done=Sum("done"),
        failed=Count("pk", filter=Q(status=RenderJob.Status.FAILED)),
        open=Count("pk", filter=Q(status__in=[RenderJob.Status.PENDING, RenderJob.Status.RUNNING])),
    )
    total, done = jobs["total"] or 0, jobs["done"] or 0
    status = stimulus_set.build_status
    if status == BuildStatus.FAILED:
        return BuildState("failed", done, total, stimulus_set.build_error)
    if status in {BuildStatus.QUEUED, BuildStatus.PLANNING}:
        return BuildState(status, done, total, "")
    if status == BuildStatus.RENDERING:
        if jobs["open"]:
            return BuildState("rendering", done, total, "")
        if jobs["failed"]:
            failed = stimulus_set.render_jobs.filter(status=RenderJob.Status.FAILED).first()
            lines = failed.error.strip().splitlines() if failed else []
            return BuildState(
                "failed",
                done,
                total,
                f"{jobs['failed']} render job(s) failed: {lines[-1] if lines else 'unknown error'}",
            )
        return BuildState("done", done, total, "")
    if stimulus_set.source == StimulusSet.Source.IMPORTED:
        return BuildState("imported", 0, 0, "")
    return BuildState("", done, total, "")


# --- ZIP import ----------------------------------------------------------------------------------------------


def stimuli_import_zip(
    *, archive: IO[bytes], archive_name: str, set_name: str, labels: IO[bytes] | None = None
) -> tuple[int, int]:
    """Unpack a ZIP of images safely and import it exactly as `import_stimuli DIR --labels CSV` would.

    The labels CSV is the uploaded one, else the one CSV in the ZIP (or its labels.csv); file names in it are
    relative to the CSV's folder (an uploaded CSV: the ZIP's root, or its only top-level folder).
    """
    from generation.services import stimuli_import

    folder = Path(tempfile.mkdtemp(prefix="stimuli-zip-", dir=getattr(settings, "FILE_UPLOAD_TEMP_DIR", None)))
    try:
        root = folder / "zip"
        files = _unzip(archive, archive_name, root)
        if labels is not None:
            labels_csv = folder / "labels.csv"
            with labels_csv.open("wb") as out:
                shutil.copyfileobj(labels, out)
            tops = {f.parts[0] for f in files}
            directory = root / tops.pop() if len(tops) == 1 and all(len(f.parts) > 1 for f in files) else root
        else:
            csvs = [f for f in files if f.suffix.lower() == ".csv"]
            if len(csvs) > 1:
                named = [f for f in csvs if f.name.lower() == "labels.csv"]
                if len(named) != 1:
                    raise SetupError(
                        f"{archive_name} holds several CSV files ({', '.join(map(str, csvs[:4]))}); "
                        "keep one, name it labels.csv, or upload the labels separately"
                    )
                csvs = named
            if not csvs:
                raise SetupError(
                    f"{archive_name} holds no labels CSV (columns filename, condition); add labels.csv "
                    "or upload it separately"
                )
            labels_csv = root / csvs[0]
            directory = labels_csv.parent
        try:
            return stimuli_import(directory=directory, labels_csv=labels_csv, set_name=set_name)
        except SetupError as exc:
            # Say where in the upload, not where in our temporary folder.
            message = str(exc).replace(f"{root}/", f"{archive_name}:").replace(str(root), archive_name)
            raise SetupError(message.replace(str(folder / "labels.csv"), "the labels CSV")) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _unzip(archive: IO[bytes], archive_name: str, root: Path) -> list[PurePosixPath]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise SetupError(f"{archive_name} is not a ZIP file") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_FILES:
            raise SetupError(f"{archive_name} holds {len(members)} files; at most {MAX_ZIP_FILES} per upload")
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise SetupError(f"{archive_name} unpacks to more than {MAX_ZIP_BYTES // 1024**3} GB")
        written = []
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts:
                raise SetupError(f"{archive_name} holds an unsafe path: {member.filename}")
            if "__MACOSX" in name.parts or any(part.startswith(".") for part in name.parts):
                continue  # resource forks and hidden files that archivers add
            target = root.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                raise SetupError(f"{archive_name}: cannot unpack {member.filename} ({exc})") from None
            written.append(name)
    if not written:
        raise SetupError(f"{archive_name} is empty")
    return written
