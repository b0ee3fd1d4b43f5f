"""Images/s of (a) the bare forward pass and (b) the whole render pipeline, on random-weight BigGANs.

    .venv/bin/python bench/generation.py [--threads 1] [--batch 8] [--models tiny,128]

(b) is what a render job does per perturbed network: perturb the targeted weights in place, run the
batches, restore the weights, and in encoder threads PNG-encode, write atomically and compute the
descriptors. 256/512 rows are added on a CUDA machine. Goal: (b)/(a) >= 0.8 at batch >= 8.
"""

from __future__ import annotations

import argparse
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


def bench_model(preset: str, *, batch: int, device: str, workdir: Path, images: int,
                rounds: int) -> tuple[float, float]:
    folder = workdir / preset
    make_random(folder, preset=preset, seed=0)
    adapter = load_generator(model_info(folder), device=device)
    model = {"id": preset, "sha256": adapter.sha256, "architecture": adapter.architecture}
    perturbation = {"kind": "multiplicative", "epsilon": 0.5, "targets": ["all"], "seed": 1, "noise": "normal"}
    # A design grid as render jobs see it: 8 classes x images/8 latent seeds through one perturbed network.
    classes = [1, 207, 980, 11, 130, 339, 417, 949]
    recipes = [Recipe(model=model, seed=i // 8, class_index=classes[i % 8], truncation=0.4,
                      perturbation=perturbation, size=adapter.native_size, batch_size=batch) for i in range(images)]

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
        render(adapter, recipes, destination=lambda r: out / f"{r.seed}-{r.class_index}.png",
               on_batch=lambda b: None)
        _sync(device)
        pipeline = max(pipeline, images / (time.perf_counter() - start))
    return bare, pipeline


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (TORCH_NUM_THREADS; default 1)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", default="")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    configure_torch(args.threads)
    device = pick_device("auto")
    models = args.models.split(",") if args.models else (["tiny", "128", "256", "512"] if device == "cuda"
                                                         else ["tiny", "128"])
    print(f"device {device}, torch {torch.__version__}, {args.threads} torch thread(s), batch {args.batch}, "
          f"best of {args.rounds} rounds")
    print(f"{'model':<6} {'images':>6} {'(a) forward img/s':>18} {'(b) pipeline img/s':>19} {'(b)/(a)':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in models:
            bare, pipeline = bench_model(preset, batch=args.batch, device=device, workdir=Path(tmp),
                                         images=IMAGES[preset], rounds=args.rounds)
            print(f"{preset:<6} {IMAGES[preset]:>6} {bare:>18.2f} {pipeline:>19.2f} {pipeline / bare:>8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
