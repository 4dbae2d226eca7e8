"""How many torch threads a training run uses: whichever count steps fastest right now.

On a 2-core CPU, MKL splits each of fc1's matrix products statically between its threads, so
when another program takes one core (a browser, a build, a neighbouring VM) every product waits
for the half on the busy core: two threads then step several times slower than one. Fixing
one thread gives up much of the speed on a quiet machine, so the tuner measures instead, while
training (benchmarks/threads.py compares it with fixed counts, quiet and busy; the figures
are in docs/benchmarks.md):

- it times steps in windows of `window` steps and compares their mean times, not medians:
  with a busy core, a few two-thread steps take tens of times longer than the rest and hold
  most of the time while the median step looks fast; each window's first step is not
  counted (after a switch it may include waking the new count's threads);
- after the first window, every `period` steps, and at once when the current count's mean
  rises to `trigger` times what it was when chosen, it tries the other counts for a window
  each (cut short as soon as a count's time exceeds a whole window of the best so far) and
  keeps the fastest;
- a trial that confirms the current count doubles the period (up to `max_period`), one that
  changes it resets the period, so a quiet machine pays for few trials (the slower count's
  extra time on one window every `max_period` steps).

Only for steps whose results do not depend on the thread count, so a run's weights do not
depend on what else the machine was doing: the fused step with its numba kernels (they
compute each image the same way on any thread; its SGD update is element-wise), over the
counts under which a few steps give exactly the weights all cores give
(`same_result_counts`, checked at the start of every run; on this 2-core machine: 2 and 1,
tests/test_threads.py). Plain autograd and the fused step's torch convolution keep torch's
default.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch


class ThreadTuner:
    """Call `step()` after every training step; `restart()` after a pause (validation, saving).

    `steps` counts the steps run at each thread count.
    """

    def __init__(self, choices: Sequence[int], *, window: int = 40, period: int = 400,
                 max_period: int = 3200, trigger: float = 1.3,
                 clock: Callable[[], float] = time.perf_counter,
                 set_threads: Callable[[int], None] = torch.set_num_threads):
        self.choices = list(dict.fromkeys(choices))  # first: the starting count
        self.window, self.base_period, self.max_period = window, period, max_period
        self.period, self.trigger = period, trigger
        self.clock, self.set_threads = clock, set_threads
        self.current = self.active = self.choices[0]
        self.set_threads(self.current)
        self.chosen_mean: float | None = None  # the current count's mean step when chosen
        self.since_trial = 0  # steps since the last trial
        self.trial: dict[int, float] = {}  # count -> window mean, during a trial
        self.steps = {count: 0 for count in self.choices}
        self.restart()

    @classmethod
    def default_choices(cls, cores: int) -> list[int]:
        """All cores (torch's default), one fewer (another program holds a core), one."""
        return [c for c in dict.fromkeys((cores, cores - 1, 1)) if c >= 1]

    def restart(self) -> None:
        """Forget the time since the last step and the partial window."""
        self.last = self.clock()
        self.times: list[float] = []

    def step(self) -> None:
        now = self.clock()
        self.times.append(now - self.last)
        self.last = now
        self.steps[self.active] += 1
        timed = self.times[1:]  # [0]: may include waking the threads of a new count
        if self.trial and sum(timed) > self.window * min(self.trial.values()):
            self._trial_window(statistics.fmean(timed))  # it cannot win any more: cut short
        elif len(timed) == self.window:
            (self._trial_window if self.trial else self._work_window)(statistics.fmean(timed))

    def _work_window(self, mean: float) -> None:
        self.times = []
        self.since_trial += self.window + 1
        if (self.chosen_mean is None or mean > self.trigger * self.chosen_mean
                or self.since_trial >= self.period):  # (None: the run's first window)
            self.trial = {self.current: mean}
            self._next_trial()

    def _trial_window(self, mean: float) -> None:
        self.times = []
        self.trial[self.active] = mean
        self._next_trial()

    def _next_trial(self) -> None:
        """Switch to the next count not yet tried, or settle on the fastest."""
        untried = [c for c in self.choices if c not in self.trial]
        if untried:
            self._switch(untried[0])
            return
        best = min(self.trial, key=self.trial.__getitem__)
        self.period = (min(2 * self.period, self.max_period) if best == self.current
                       else self.base_period)
        self.current, self.chosen_mean = best, self.trial[best]
        self.trial, self.since_trial = {}, 0
        self._switch(best)

    def _switch(self, count: int) -> None:
        if count != self.active:
            self.set_threads(count)
            self.active = count


def same_result_counts(counts: Sequence[int], compute: Callable[[], torch.Tensor]) -> list[int]:
    """The thread counts among `counts` under which `compute()` returns exactly (bit for bit)
    what it returns under the first. MKL splits a product's work by the thread count, and
    some splits change the order of its sums: on this machine the fused step's weights are
    identical on 1, 2, 3 and 5 threads, and on 4, 6, 7, 8, 12 and 16, but not across."""
    before = torch.get_num_threads()
    results = []
    try:
        for count in counts:
            torch.set_num_threads(count)
            results.append(compute().clone())
    finally:
        torch.set_num_threads(before)
    return [c for c, r in zip(counts, results, strict=True) if torch.equal(r, results[0])]
