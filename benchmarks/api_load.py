"""Benchmark: the HTTP API under load (`fashion-cnn serve` on 127.0.0.1, driven by wrk).

    python benchmarks/api_load.py [--quick] [--models best,seed] [--out ...]

Needs Debian's `wrk` (`apt-get install wrk`): a C load generator, so the client takes little of
the 2 cores the server needs; `api_load.lua` replays ready-made raw requests and counts
statuses. For each model and each batching setting (`--batching` / `--no-batching`) one real
server is started, warmed up, then loaded case by case: concurrency 1, 8 and 64, each request a
single 28x28 PNG (real test images) or a 1-megapixel photo-style JPEG, with 10% malformed
requests mixed in (garbage bytes, a truncated JPEG, an empty body, a declared length over the
limit, a text content type). Each case is bounded in requests and seconds. Recorded per case:
requests/s (all and answered 200), p50/p95/p99 latency, status counts, dropped connections
(wrk's connect/read/write/timeout errors), the server's RSS before and after. For comparison,
pictures/s of `fashion-cnn predict one.png` started once per picture. The load average is
recorded before and after: a busy machine lowers every figure.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from PIL import Image
from predict_speed import megapixel_jpeg

from fashion_cnn.ports import free_port

LUA = common.HERE / "api_load.lua"
MALFORMED_EVERY = 10  # one request in ten is malformed
CONCURRENCY = (1, 8, 64)
HUGE = 50 * 2**20  # a declared Content-Length over the server's 20 MB limit
TARGETS = {"best": {"rps": 250, "p99_ms": 400}, "seed": {"rps": 600}}  # issue 16, c=64 PNG


def raw_request(port: int, content_type: str | None, body: bytes,
                length: int | None = None) -> bytes:
    """One HTTP/1.1 POST /v1/predict, keep-alive, as bytes on the wire."""
    head = ["POST /v1/predict HTTP/1.1", f"Host: 127.0.0.1:{port}",
            f"Content-Length: {len(body) if length is None else length}"]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def request_mix(port: int, pictures: list[bytes], content_type: str, jpeg: bytes) -> list[bytes]:
    """The requests a case cycles through: nine good ones, then one malformed, in turn."""
    rng = np.random.default_rng(0)
    bad = [raw_request(port, "image/png", rng.bytes(3000)),  # garbage
           raw_request(port, "image/jpeg", jpeg[:len(jpeg) // 2]),  # truncated
           raw_request(port, "image/png", b""),  # empty body
           raw_request(port, "image/png", b"", length=HUGE),  # refused before it is read
           raw_request(port, "text/plain", b"hello")]  # no image
    mix = []
    for i, picture in enumerate(pictures):
        mix.append(raw_request(port, content_type, picture))
        if i % (MALFORMED_EVERY - 1) == MALFORMED_EVERY - 2:
            mix.append(bad[(i // (MALFORMED_EVERY - 1)) % len(bad)])
    return mix


def png(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "PNG")
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(model: str, batching: bool, port: int) -> subprocess.Popen:
    command = [common.FASHION_CNN, "serve", "--model", model, "--port", str(port),
               "--batching" if batching else "--no-batching"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{url}/v1/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {timeout} s")


def wrk(url: str, requests: list[bytes], concurrency: int, max_requests: int,
        seconds: float, folder: Path) -> dict:
    """One wrk run: its RESULT line as a dict."""
    path = folder / "requests.bin"
    with path.open("wb") as f:
        for r in requests:
            f.write(b"%d\n" % len(r) + r)
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:.0f}s", "--timeout", "10s",
               "-s", str(LUA), url, "--", str(path), str(max_requests)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def run_case(url: str, pid: int, requests: list[bytes], concurrency: int, max_requests: int,
             seconds: float, folder: Path) -> dict:
    """A wrk run plus the server's memory around it, summarised."""
    before = rss_mb(pid)
    r = wrk(url, requests, concurrency, max_requests, seconds, folder)
    after = rss_mb(pid)
    statuses = {k: r["statuses"][k] for k in sorted(r["statuses"])}
    answered = sum(statuses.values())
    return {"concurrency": concurrency, "requests": answered,
            "seconds": r["duration_s"], "requests_per_second": answered / r["duration_s"],
            "ok_per_second": statuses.get("200", 0) / r["duration_s"],
            "latency_ms": r["latency_ms"], "statuses": statuses,
            "server_errors_5xx": sum(n for k, n in statuses.items() if k.startswith("5")),
            "dropped_connections": sum(r["errors"].values()), "wrk_errors": r["errors"],
            "rss_mb_before": before, "rss_mb_after": after}


def serve_and_load(model: str, batching: bool, pictures: dict[str, list[bytes]],
                   bounds: dict[str, tuple[int, float]], folder: Path) -> dict:
    """Start one server, warm it up, run every case, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(model, batching, port)
    try:
        wait_ready(url, proc)
        rss_ready = rss_mb(proc.pid)
        jpeg = pictures["jpeg_1mp"][0]
        mixes = {kind: request_mix(port, blobs, "image/png" if kind == "png_28x28" else
                                   "image/jpeg", jpeg) for kind, blobs in pictures.items()}
        run_case(url, proc.pid, mixes["png_28x28"], 64, *bounds["warmup"], folder)
        cases = []
        for kind in ("png_28x28", "jpeg_1mp"):
            for c in CONCURRENCY:
                bound = bounds["main" if (kind, c) == ("png_28x28", 64) else kind]
                case = run_case(url, proc.pid, mixes[kind], c, *bound, folder)
                cases.append({"pictures": kind, **case})
                print(f"  {model} batching={'on' if batching else 'off'} {kind} c={c}: "
                      f"{case['requests_per_second']:.0f} req/s, p99 "
                      f"{case['latency_ms']['p99']:.0f} ms, {case['statuses']}, dropped "
                      f"{case['dropped_connections']}", file=sys.stderr)
        return {"model": model, "batching": batching, "rss_mb_ready": rss_ready,
                "rss_mb_end": rss_mb(proc.pid), "cases": cases}
    finally:
        proc.terminate()
        proc.wait(30)


def cli_per_call(model: str, picture: Path, calls: int) -> dict:
    """`fashion-cnn predict one.png` started once per picture: pictures/s."""
    command = [common.FASHION_CNN, "predict", str(picture), "--model", model, "--format", "json"]
    times = common.timed(lambda: subprocess.run(command, capture_output=True, check=True), calls)
    return {"calls": calls, "median_seconds": statistics.median(times),
            "pictures_per_second": 1 / statistics.median(times)}


def targets_met(servers: list[dict]) -> dict:
    """Issue 16's targets, at concurrency 64 with single 28x28 PNGs, batching on."""
    met = {}
    for s in servers:
        if not s["batching"] or s["model"] not in TARGETS:
            continue
        case = next(c for c in s["cases"]
                    if c["pictures"] == "png_28x28" and c["concurrency"] == 64)
        goal = TARGETS[s["model"]]
        met[s["model"]] = {
            "requests_per_second": case["requests_per_second"] >= goal["rps"],
            **({"p99_ms": case["latency_ms"]["p99"] <= goal["p99_ms"]} if "p99_ms" in goal
               else {}),
            "no_5xx": case["server_errors_5xx"] == 0,
            "no_dropped_connections": case["dropped_connections"] == 0,
            "memory_growth_mb_at_most_50": case["rss_mb_after"] - case["rss_mb_before"] <= 50,
            "at_least_20000_requests": case["requests"] >= 20_000}
    return met


def main() -> None:
    parser = common.parser(__doc__, "api_load")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: a few hundred requests per case")
    parser.add_argument("--models", type=common.comma_list(("best", "seed")),
                        default=["best", "seed"])
    args = parser.parse_args()
    if args.quick and args.out == common.RESULTS / "api_load.json":  # keep the recorded run
        args.out = Path(tempfile.gettempdir()) / "api_load_quick.json"
    if shutil.which("wrk") is None:
        sys.exit("api_load.py needs wrk: apt-get install wrk")
    data = common.load_data(args)
    rng = np.random.default_rng(0)
    test = data.test_images.numpy()
    pictures = {"png_28x28": [png(test[i]) for i in range(900)],
                "jpeg_1mp": [megapixel_jpeg(test[i], rng) for i in range(27)]}
    # (max requests, max seconds) per case: the main one is the c=64 PNG case
    bounds = ({"warmup": (200, 3), "main": (1000, 10), "png_28x28": (300, 5),
               "jpeg_1mp": (100, 5)} if args.quick else
              {"warmup": (2000, 10), "main": (20_000, 200), "png_28x28": (3000, 15),
               "jpeg_1mp": (1000, 15)})
    load_before = os.getloadavg()
    servers = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one = folder / "one.png"
        one.write_bytes(pictures["png_28x28"][0])
        cli = {m: cli_per_call(m, one, 3 if args.quick else 5) for m in args.models}
        for model in args.models:
            for batching in (True, False):
                servers.append(serve_and_load(model, batching, pictures, bounds, folder))
    result = {"quick": args.quick, "client": "wrk -t1 (api_load.lua), keep-alive",
              "malformed_share": 1 / MALFORMED_EVERY, "bounds": bounds,
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "servers": servers, "cli_process_per_picture": cli,
              "targets": TARGETS, "targets_met": targets_met(servers)}
    common.write_result(args.out, result, seed=0, checksums=data.checksums)
    print(json.dumps(result["targets_met"], indent=1), file=sys.stderr)
    print(f"-> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
