"""Load on `trashseg serve` over loopback: N concurrent clients POST a photo for a bounded time; requests/s,
p50/p95/p99 latency, errors (503s from the bounded queue counted apart: they are the server refusing by design),
and the server's peak RSS (VmHWM of its process). Writes docs/benchmarks.md.

    python bench/serve_load.py [--model RUN_OR_CKPT] [--clients 50] [--seconds 30] [--workers 1] [--queue 16]

The model is the demo's best run (`trashseg demo` → demo_out/runs), else a small-recipe run trained here for a few
steps on generated data (inference cost depends on the architecture and input size, not on the weights).
Clients that get 503 wait its Retry-After, as a polite client would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section  # noqa: E402

from trashseg.config import load_config  # noqa: E402
from trashseg.data.sample import write_sample_dataset  # noqa: E402
from trashseg.models.segmenter import best_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def small_run(tmp: Path) -> Path:
    """The small CPU recipe trained for a few steps on generated data: a model of the demo's architecture."""
    from trashseg.train.run import train

    write_sample_dataset(tmp / "data", n_train=8, n_val=4, n_test=4)
    cfg = load_config(
        ROOT / "configs" / "small_cpu.yaml",
        [
            f"data.root={tmp / 'data'}",
            f"data.cache_dir={tmp / 'cache'}",
            "train.epochs=1",
            "train.val_every=1",
            "train.max_steps_per_epoch=2",
            "train.loggers=[csv]",
        ],
    )
    train(cfg, tmp / "run")
    return tmp / "run"


def pick_model(given: Path | None, tmp: Path) -> tuple[Path, str]:
    """The model to serve and how the report names it."""
    if given is not None:
        return given, str(given)
    demo = best_run(Path("demo_out") / "runs")
    if demo is not None:
        return demo, f"the demo's best run ({demo.name})"
    return small_run(tmp), "the small CPU recipe (a few steps on generated data; no demo_out found)"


def photo(size: int) -> bytes:
    """A JPEG of a generated scene at `size`² (what a phone upload is after the browser's own resize)."""
    rng = np.random.default_rng(0)
    image = np.full((size, size, 3), 90, np.uint8)
    for _ in range(12):
        x, y, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(size // 20, size // 6))]
        cv2.circle(image, (x, y), r, rng.integers(0, 255, 3).tolist(), -1)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, workers: int, queue: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trashseg",
            "serve",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--queue",
            str(queue),
            "--device",
            "cpu",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("server not ready within 300 s")


def peak_rss_mib(pid: int) -> float:
    """The process's resident-set high-water mark (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


async def client(http: httpx.AsyncClient, url: str, body: bytes, until: float, stats: dict) -> None:
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            r = await http.post(url, files={"file": ("load.jpg", body, "image/jpeg")})
        except httpx.HTTPError as exc:
            stats["errors"].append(type(exc).__name__)
            continue
        if r.status_code == 200:
            stats["latency"].append(time.perf_counter() - start)
        elif r.status_code == 503:
            stats["busy"] += 1
            await asyncio.sleep(float(r.headers.get("retry-after", "1")))
        else:
            stats["errors"].append(f"{r.status_code} {r.text[:100]}")


async def load(url: str, body: bytes, clients: int, seconds: float) -> tuple[dict, float]:
    stats: dict = {"latency": [], "busy": 0, "errors": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300)) as http:
        start = time.monotonic()
        await asyncio.gather(*(client(http, url, body, start + seconds, stats) for _ in range(clients)))
        return stats, time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="run folder, .ckpt or .onnx (default: the demo's best run)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue", type=int, default=16)
    ap.add_argument("--size", type=int, default=512, help="side of the uploaded JPEG")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, source = pick_model(args.model, Path(tmp))
        port = free_port()
        server = start_server(model, port, args.workers, args.queue)
        try:
            stats, elapsed = asyncio.run(
                load(f"http://127.0.0.1:{port}/predict", photo(args.size), args.clients, args.seconds)
            )
            rss = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    ms = np.percentile(np.array(stats["latency"]) * 1000, [50, 95, 99]) if stats["latency"] else [float("nan")] * 3
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    text = (
        f"`trashseg serve` over loopback, {args.clients} concurrent clients for {elapsed:.0f} s, each POSTing a "
        f"{args.size}² JPEG to `/predict` (JSON with shares, overlay and mask PNGs) and waiting Retry-After on "
        f"503; server `--workers {args.workers} --queue {args.queue}`, model: {source}. Machine: {machine}.\n\n"
        "| requests/s (200) | p50 ms | p95 ms | p99 ms | 200s | 503s (queue full, by design) | errors | "
        "server peak RSS MiB |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| {len(stats['latency']) / elapsed:.2f} | {ms[0]:.0f} | {ms[1]:.0f} | {ms[2]:.0f} | "
        f"{len(stats['latency'])} | {stats['busy']} | {len(stats['errors'])} | {rss:.0f} |\n\n"
        f"Latency counts the wait in the queue: with {args.workers} worker(s) and {args.queue} places, a request "
        "admitted waits behind at most that many; the rest are refused at once instead of piling up in memory."
    )
    print(text)
    if stats["errors"]:
        print("errors:", sorted(set(stats["errors"]))[:10])
    update_section(ROOT / "docs" / "benchmarks.md", "Web service under load (bench/serve_load.py)", text)
    if stats["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
