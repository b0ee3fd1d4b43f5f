"""Images/s of (a) the bare forward pass and (b) the whole render pipeline, on random-weight BigGANs.

    .venv/bin/python bench/generation.py [--threads 1] [--batch 8] [--models tiny,128]

(b) is what a render job does per perturbed network: perturb the targeted weights in place, run the
batches, restore the weights, and in encoder threads PNG-encode, write atomically and compute the
descriptors. 256/512 rows are added on a CUDA machine. Goal: (b)/(a) >= 0.8 at batch >= 8.

(c) is style transfer (Gatys; VGG-19 and NIN at their published sizes, L-BFGS) and DeepDream (GoogLeNet,
4 octaves x 10 iterations, inception4c) on random weights at --opt-size px (default 256): seconds per
iteration and per image, and peak memory. Each case runs in a fresh child process, so its peak RSS is its own
(on CUDA: peak allocated GPU memory). Style transfer runs --st-iterations iterations and reports the time per
image for the default 300 iterations from the per-iteration time. `--only-optimisations` skips (a) and (b).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from generation.pipeline import configure_torch, pick_device, render
from generation.recipes import Recipe
from generation.weights import load_generator, make_random, model_info

IMAGES = {"tiny": 256, "128": 16, "256": 64, "512": 32}


def bench_model(
    preset: str, *, batch: int, device: str, workdir: Path, images: int, rounds: int
) -> tuple[float, float]:
    folder = workdir / preset
    make_random(folder, preset=preset, seed=0)
    adapter = load_generator(model_info(folder), device=device)
    model = {"id": preset, "sha256": adapter.sha256, "architecture": adapter.architecture}
    perturbation = {"kind": "multiplicative", "epsilon": 0.5, "targets": ["all"], "seed": 1, "noise": "normal"}
    # A design grid as render jobs see it: 8 classes x images/8 latent seeds through one perturbed network.
    classes = [1, 207, 980, 11, 130, 339, 417, 949]
    recipes = [
        Recipe(
            model=model,
            seed=i // 8,
            class_index=classes[i % 8],
            truncation=0.4,
            perturbation=perturbation,
            size=adapter.native_size,
            batch_size=batch,
        )
        for i in range(images)
    ]

    z = torch.stack([adapter.latent(r.seed, 0.4) for r in recipes[:batch]]).to(device)
    y = torch.stack([adapter.one_hot(r.class_index) for r in recipes[:batch]]).to(device)
    with torch.inference_mode():
        adapter.model(z, y, 0.4)  # warm-up
    out = workdir / f"out-{preset}"
    bare = pipeline = 0.0
    # Alternate (a) and (b) and keep each one's best round: shared machines are noisy.
    for _ in range(rounds):
        _sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(images // batch):
                adapter.model(z, y, 0.4)
        _sync(device)
        bare = max(bare, (images // batch) * batch / (time.perf_counter() - start))

        start = time.perf_counter()
        render(adapter, recipes, destination=lambda r: out / f"{r.seed}-{r.class_index}.png", on_batch=lambda b: None)
        _sync(device)
        pipeline = max(pipeline, images / (time.perf_counter() - start))
    return bare, pipeline


OPTIMISATION_CASES = {
    "style-vgg19": ("vgg19", "style-transfer"),
    "style-nin": ("nin", "style-transfer"),
    "deepdream-googlenet": ("googlenet", "deepdream"),
}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def optimisation_child(case: str, *, size: int, iterations: int, threads: int) -> dict[str, float]:
    """One case in this (fresh) process: returns seconds per iteration/image and memory figures."""
    import numpy as np

    from generation.backbone_catalog import STYLE_DEFAULTS, BackboneInfo
    from generation.backbones import Backbone, random_backbone
    from generation.deepdream import deepdream
    from generation.optimisation_render import to_tensor
    from generation.style_transfer import style_transfer

    configure_torch(threads)
    device = pick_device("auto")
    architecture, kind = OPTIMISATION_CASES[case]
    config, model = random_backbone(architecture, "full", 0)
    info = BackboneInfo(
        folder=Path("."), backbone_id=architecture, architecture=architecture, config=config, sha256="", untrained=True
    )
    network = Backbone(model.to(device).requires_grad_(False), info=info)
    rng = np.random.default_rng(0)
    content = to_tensor((rng.random((size, size, 3)) * 255).astype(np.uint8), device)
    style = to_tensor((rng.random((size, size, 3)) * 255).astype(np.uint8), device)
    style_params = {
        **STYLE_DEFAULTS.get(architecture, {}),
        "tv_weight": 1e-3,
        "optimiser": "lbfgs",
        "init": "noise",
        "seed": 0,
        "size": size,
    }
    dream_params = {
        "objective": "activation",
        "layer": "inception4c",
        "octaves": 4,
        "octave_scale": 1.4,
        "iterations": 10,
        "step_size": 0.01,
        "jitter": 32,
        "seed": 0,
    }

    def run(count: int) -> None:
        if kind == "style-transfer":
            style_transfer(
                network,
                content=content,
                style=style,
                params={**style_params, "iterations": count},
                snapshots=[count],
                on_snapshot=lambda i, x: None,
            )
        else:
            deepdream(network, base=content, params={**dream_params, "iterations": count})
        _sync(device)

    before = _rss_mb()  # model and inputs loaded; the peak above this is the optimisation's working memory
    run(1)  # warm-up: the first pass initialises kernels (about 1 s of CPU)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), time.process_time()
    run(iterations if kind == "style-transfer" else 10)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    # A style-transfer image takes 300 iterations by default (timed: `iterations`); a dream is 4 x 10.
    timed, image_iterations = (iterations, 300) if kind == "style-transfer" else (40, 40)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "per_iteration_s": wall / timed,
        "per_image_s": wall / timed * image_iterations,
        "cpu_per_image_s": cpu / timed * image_iterations,
        "image_iterations": image_iterations,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
    }
    if device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def bench_optimisations(*, size: int, iterations: int, threads: int) -> None:
    print(f"(c) style transfer and DeepDream at {size} px, random weights, {threads} torch thread(s)")
    print(
        f"{'case':<20} {'s/iteration':>11} {'s/image':>9} {'CPU s/image':>11} {'iterations/image':>16} "
        f"{'peak RSS MB':>11} {'RSS of model MB':>17} {'peak GPU MB':>11}"
    )
    for case in OPTIMISATION_CASES:
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                case,
                "--opt-size",
                str(size),
                "--st-iterations",
                str(iterations),
                "--threads",
                str(threads),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(f"{case:<20} failed: {result.stderr.strip().splitlines()[-1] if result.stderr else '?'}")
            continue
        r = json.loads(result.stdout.strip().splitlines()[-1])
        gpu = f"{r['peak_gpu_mb']:.0f}" if "peak_gpu_mb" in r else "-"
        print(
            f"{case:<20} {r['per_iteration_s']:>11.3f} {r['per_image_s']:>9.1f} {r['cpu_per_image_s']:>11.1f} "
            f"{r['image_iterations']:>16} "
            f"{r['peak_rss_mb']:>11.0f} {r['rss_before_mb']:>17.0f} {gpu:>11}",
            flush=True,
        )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (TORCH_NUM_THREADS; default 1)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", default="")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--opt-size", type=int, default=256, help="(c): image size in px")
    parser.add_argument("--st-iterations", type=int, default=10, help="(c): style-transfer iterations timed")
    parser.add_argument("--only-optimisations", action="store_true", help="run (c) only")
    parser.add_argument("--skip-optimisations", action="store_true", help="run (a) and (b) only")
    parser.add_argument("--child", choices=sorted(OPTIMISATION_CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                optimisation_child(args.child, size=args.opt_size, iterations=args.st_iterations, threads=args.threads)
            )
        )
        return
    configure_torch(args.threads)
    if not args.skip_optimisations and args.only_optimisations:
        bench_optimisations(size=args.opt_size, iterations=args.st_iterations, threads=args.threads)
        return
    device = pick_device("auto")
    models = (
        args.models.split(",")
        if args.models
        else (["tiny", "128", "256", "512"] if device == "cuda" else ["tiny", "128"])
    )
    print(
        f"device {device}, torch {torch.__version__}, {args.threads} torch thread(s), batch {args.batch}, "
        f"best of {args.rounds} rounds"
    )
    print(f"{'model':<6} {'images':>6} {'(a) forward img/s':>18} {'(b) pipeline img/s':>19} {'(b)/(a)':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in models:
            bare, pipeline = bench_model(
                preset, batch=args.batch, device=device, workdir=Path(tmp), images=IMAGES[preset], rounds=args.rounds
            )
            print(
                f"{preset:<6} {IMAGES[preset]:>6} {bare:>18.2f} {pipeline:>19.2f} {pipeline / bare:>8.2f}", flush=True
            )
    if not args.skip_optimisations:
        bench_optimisations(size=args.opt_size, iterations=args.st_iterations, threads=args.threads)


if __name__ == "__main__":
    main()
