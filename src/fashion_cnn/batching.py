"""Dynamic batching for the HTTP API: pictures of concurrent requests share one forward pass.

Requests decode their pictures in a thread pool (`Classifier.prepare`), then hand them to one
`Batcher` thread, which owns the model. The thread takes the first waiting request, adds any
others already queued and, while more requests are still being decoded, waits up to
`max_wait_ms` for them, until the batch holds `max_batch` pictures; then one forward pass and
`Classifier.fill` serve them all. A model call has a fixed cost per call, so under load many
small requests cost about what one large one does. With `enabled=False` every request gets its
own forward pass (the baseline the load benchmark compares with).

At most `max_queue` requests wait for the model; further ones wait in the event loop
(backpressure, not an error).

Every forward pass runs on one of a few batch sizes (`padded_size`: 1, 2, 4, 8, then multiples
of 8), the spare rows zero pictures: with every size from 1 to 64 the server's memory kept
growing (the C allocator fragments on ever-different tensor sizes: +285 MB over 20,000 requests
for `best`), with these few it stays flat, at the cost of at most 7 spare rows per pass.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the command line reads BatchSettings without loading torch
    from .predict import Classifier, Prediction


@dataclass(frozen=True)
class BatchSettings:
    """How requests are grouped into forward passes."""

    enabled: bool = True
    max_batch: int = 64  # pictures per forward pass (one request's pictures are never split)
    max_wait_ms: float = 2.0  # how long a batch waits for requests still being decoded
    max_queue: int = 256  # requests waiting for the model at once; more wait their turn


def padded_size(n: int) -> int:
    """The batch size a forward pass of n pictures runs at: 1, 2, 4, 8, 16, 24, 32, ..."""
    return 1 << (n - 1).bit_length() if n <= 8 else -(-n // 8) * 8


@dataclass
class _Job:
    pictures: list[Prediction]  # prepared, without error
    top_k: int
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class Batcher:
    """The model's one worker thread and its queue; `start()` it, then `await classify(...)`."""

    def __init__(self, classifier: Classifier, settings: BatchSettings = BatchSettings(),
                 on_batch: Callable[[int], None] | None = None):
        self.classifier = classifier
        self.settings = settings
        self.on_batch = on_batch  # called with each forward pass's picture count (metrics)
        self.ready = threading.Event()  # set once the model has run once (warmed up)
        self.decoding = 0  # requests decoding their pictures now: worth waiting for
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._slots: asyncio.Semaphore | None = None
        self._thread = threading.Thread(target=self._run, name="fashion-cnn-batcher",
                                        daemon=True)

    def start(self) -> None:
        """Start the worker thread; it warms the model up, then sets `ready`."""
        self._thread.start()

    def stop(self) -> None:
        """Finish the queued requests, then end the worker thread."""
        self._queue.put(None)
        self._thread.join()

    async def classify(self, pictures: list[Prediction], top_k: int) -> None:
        """Fill every prepared picture without an error (label, top-k, unsure) in place."""
        ready = [p for p in pictures if p.error is None]
        if not ready:
            return
        if self._slots is None:  # created here: it belongs to the server's event loop
            self._slots = asyncio.Semaphore(self.settings.max_queue)
        loop = asyncio.get_running_loop()
        async with self._slots:
            job = _Job(ready, top_k, loop.create_future(), loop)
            self._queue.put(job)
            await job.future

    # -- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        broken = self._warm_up()
        while (job := self._queue.get()) is not None:
            jobs = self._gather(job)
            self._forward([j for j in jobs if j is not None], broken)
            if jobs[-1] is None:  # stop() was called while gathering
                return

    def _warm_up(self) -> Exception | None:
        """Run the model once at each batch size it will see, then set `ready`; a model that
        fails here is not ready, and its error answers every request (none waits forever)."""
        size = self.classifier.meta.get("image_size", 28)
        try:
            for n in sorted({padded_size(n) for n in range(1, self.settings.max_batch + 1)}):
                self.classifier.probabilities(np.zeros((n, size, size), np.uint8))
        except Exception as err:  # noqa: BLE001 - handed to the requests, which answer 500
            return err
        self.ready.set()
        return None

    def _gather(self, first: _Job) -> list[_Job | None]:
        """`first` plus the requests that join its forward pass (None last: stop now)."""
        jobs: list[_Job | None] = [first]
        if not self.settings.enabled:
            return jobs
        count = len(first.pictures)
        deadline = time.monotonic() + self.settings.max_wait_ms / 1000
        while count < self.settings.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.decoding == 0:  # nobody else is about to come
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            jobs.append(job)
            if job is None:
                break
            count += len(job.pictures)
        return jobs

    def _forward(self, jobs: list[_Job], error: BaseException | None = None) -> None:
        """One forward pass for all pictures of `jobs` (or `error` for each, without one);
        then wake their requests."""
        if error is None:
            error = self._fill(jobs)
        for job in jobs:
            job.loop.call_soon_threadsafe(_settle, job.future, error)

    def _fill(self, jobs: list[_Job]) -> Exception | None:
        """Fill the pictures of `jobs` from one forward pass; the error if it failed."""
        pictures = [p for job in jobs for p in job.pictures]
        try:
            logits = self.classifier.input_logits([p.input for p in pictures], pad=padded)
            start = 0
            for job in jobs:
                for picture, row in zip(job.pictures, logits[start:], strict=False):
                    self.classifier.fill(picture, row, job.top_k)
                    picture.input = None  # the decoded picture is no longer needed
                start += len(job.pictures)
            if self.on_batch is not None:
                self.on_batch(len(pictures))
        except Exception as err:  # noqa: BLE001 - handed to the requests, which answer 500
            return err
        return None


def padded(images: np.ndarray) -> np.ndarray:
    """uint8 [n, H, W] with black rows added up to `padded_size(n)`."""
    return np.pad(images, ((0, padded_size(len(images)) - len(images)), (0, 0), (0, 0)))


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
