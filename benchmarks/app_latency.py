"""Benchmark: the web app's start-up time and upload-to-result time in a real browser.

    python benchmarks/app_latency.py [--repeats 7] [--out benchmarks/results/app_latency.json]
        [--screenshot docs/app.png]

Starts the real server (as `fashion-cnn app` does), times until /_stcore/health answers,
then drives Debian's chromium through Playwright: each repeat loads the page, uploads a sample
product photo and times until the predicted label is on the page. Medians are reported.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import common
from playwright.sync_api import sync_playwright

from fashion_cnn import app_server
from fashion_cnn.app import SAMPLES
from fashion_cnn.ports import free_port

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def measure(repeats: int, screenshot: Path) -> dict:
    """Start the server, time its start-up, the first page and `repeats` uploads."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = app_server.start(port)
    try:
        startup = app_server.wait_healthy(url, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1250})
            first_render, uploads = None, []
            for i in range(repeats + 1):  # the first round warms the model cache, not counted
                page.goto(url)
                page.get_by_text("Upload pictures, take one").wait_for(timeout=60_000)
                if first_render is None:
                    first_render = time.perf_counter() - started
                picture = sorted(SAMPLES.glob("*.jpg"))[(5 * i) % 30]
                t0 = time.perf_counter()
                page.locator('input[type="file"]').set_input_files(str(picture))
                page.locator("h3", has_text="Result:").first.wait_for(timeout=60_000)
                if i > 0:
                    uploads.append(time.perf_counter() - t0)
            # The README's picture: the last upload with its explanation, chart drawn.
            page.get_by_text("Show which pixels drove each prediction").click()
            page.get_by_text("SmoothGrad").wait_for(timeout=60_000)
            page.locator('[data-testid="stVegaLiteChart"] svg').first.wait_for(timeout=30_000)
            page.wait_for_timeout(500)  # let the chart finish its draw
            page.screenshot(path=str(screenshot))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return {"server_startup_seconds": startup,
            "first_page_seconds": first_render,
            "upload_to_result_seconds": uploads,
            "median_upload_to_result_seconds": statistics.median(uploads),
            "repeats": repeats}


def main() -> None:
    parser = common.parser(__doc__, "app_latency", data=False)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--screenshot", type=Path, default=common.HERE.parent / "docs" / "app.png")
    args = parser.parse_args()
    result = measure(args.repeats, args.screenshot)
    common.write_result(args.out, result, seed=0, checksums={})
    print(f"server start-up {result['server_startup_seconds']:.2f} s, first page "
          f"{result['first_page_seconds']:.2f} s, upload -> result median "
          f"{result['median_upload_to_result_seconds']:.2f} s -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
