"""Running the web app's Streamlit server: the command line, and start-and-wait for scripts.

`fashion-cnn app` runs `streamlit_command` in the foreground; tests and benchmarks use `start`
and `wait_healthy` to run it in the background.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .errors import FashionCNNError

APP_SCRIPT = Path(__file__).with_name("app.py")
MODEL_ENV = "FASHION_CNN_MODEL"  # how the page learns which model to load


def streamlit_command(port: int = 8501, host: str = "localhost") -> list[str]:
    """`streamlit run` on the app page: headless, no usage statistics, 50 MB upload cap."""
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
            "--server.port", str(port), "--server.address", host,
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.maxUploadSize", "50", "--client.toolbarMode", "minimal",
            "--server.fileWatcherType", "none"]


def app_env(model: str | None) -> dict[str, str]:
    """The server's environment: ours, plus the model it is to load (empty: the default)."""
    return {**os.environ, MODEL_ENV: model or ""}


def start(port: int, host: str = "127.0.0.1", model: str | None = None) -> subprocess.Popen:
    """Start the server in the background (output captured); stop it with .terminate()."""
    return subprocess.Popen(streamlit_command(port, host), env=app_env(model),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> float:
    """Poll `url`/_stcore/health until it answers 'ok'; returns the seconds waited."""
    start_time = time.perf_counter()
    while time.perf_counter() - start_time < timeout:
        if proc.poll() is not None:
            raise FashionCNNError(f"the app exited with status {proc.returncode}: "
                                  f"{proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return time.perf_counter() - start_time
        except OSError:
            time.sleep(0.1)
    raise FashionCNNError(f"the app at {url} did not become healthy within {timeout:.0f} s")
