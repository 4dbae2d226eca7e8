"""The automatic thread count: the tuner follows the faster count, and cannot change results."""

from __future__ import annotations

import pytest
import torch

from fashion_cnn.models import build_model
from fashion_cnn.seed_fast import step as fused_step
from fashion_cnn.seed_fast.threads import ThreadTuner, same_result_counts
from fashion_cnn.training import TrainConfig, fit


class Machine:
    """A simulated machine: a step takes `cost[count]` seconds on `count` threads."""

    def __init__(self, cost: dict[int, float]):
        self.cost, self.now, self.threads = cost, 0.0, None

    def clock(self) -> float:
        return self.now

    def set_threads(self, count: int) -> None:
        self.threads = count

    def run(self, tuner: ThreadTuner, steps: int) -> dict[int, int]:
        """Steps taken on each count."""
        counts = {c: 0 for c in self.cost}
        for _ in range(steps):
            self.now += self.cost[self.threads]
            counts[self.threads] += 1
            tuner.step()
        return counts


def test_tuner_follows_the_faster_count() -> None:
    machine = Machine({2: 1.0, 1: 1.4})  # quiet: two threads are faster
    tuner = ThreadTuner([2, 1], clock=machine.clock, set_threads=machine.set_threads)
    w = tuner.window + 1  # steps per window
    assert machine.threads == 2
    quiet = machine.run(tuner, 2000)
    assert quiet[1] <= 3 * w  # trials only: the first (after a warm-up window), two more

    machine.cost[2] = 4.0  # another program takes a core: two threads wait for it
    busy = machine.run(tuner, 2000)
    assert busy[2] <= 2 * w + 3 * w  # noticed within two windows; a few trials after
    assert tuner.current == 1

    machine.cost[2] = 1.0  # quiet again: found by a periodic trial
    quiet_again = machine.run(tuner, 4000)
    assert quiet_again[2] >= 2500 and tuner.current == 2
    assert tuner.steps == {c: quiet[c] + busy[c] + quiet_again[c] for c in (1, 2)}


def test_tuner_trials_get_rarer_while_the_choice_holds() -> None:
    machine = Machine({2: 1.0, 1: 1.4})
    tuner = ThreadTuner([2, 1], clock=machine.clock, set_threads=machine.set_threads)
    first = machine.run(tuner, 2000)[1]
    later = machine.run(tuner, 2000)[1]
    assert later < first and tuner.period == tuner.max_period


def test_tuner_cuts_a_hopeless_trial_short() -> None:
    """A count that has already taken a whole window's time of the best is not run on."""
    machine = Machine({2: 1.0, 1: 10.0})
    tuner = ThreadTuner([2, 1], clock=machine.clock, set_threads=machine.set_threads)
    steps = machine.run(tuner, 2000)
    trials = 3  # after the first window, and after 400 and 800 more steps
    assert steps[1] <= trials * (1 + tuner.window // 10 + 1)  # not trials * (window + 1)


def test_tuner_ignores_pauses_after_restart() -> None:
    machine = Machine({2: 1.0, 1: 1.4})
    tuner = ThreadTuner([2, 1], clock=machine.clock, set_threads=machine.set_threads)
    machine.run(tuner, 500)
    for _ in range(20):  # e.g. validation between epochs: a long pause before each window
        machine.now += 1000.0
        tuner.restart()
        machine.run(tuner, 30)
    assert machine.threads == 2


def test_default_choices() -> None:
    assert ThreadTuner.default_choices(1) == [1]
    assert ThreadTuner.default_choices(2) == [2, 1]
    assert ThreadTuner.default_choices(8) == [8, 7, 1]


def test_same_result_counts_keeps_counts_that_match_the_first() -> None:
    before = torch.get_num_threads()

    def compute() -> torch.Tensor:  # differs on three threads
        return torch.tensor([1.0 if torch.get_num_threads() != 3 else 1.0 + 1e-7])

    assert same_result_counts([2, 3, 1], compute) == [2, 1]
    assert torch.get_num_threads() == before


def _fit(data, threads: int) -> tuple[torch.nn.Module, list[dict]]:
    torch.manual_seed(0)
    model = build_model("seed")
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, threads=threads)
    history = fit(model, config, data.train_images[:312], data.train_labels[:312],
                  progress=False, log=lambda _: None)  # 19 full batches, and one of 8
    return model, history


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one core: nothing to choose from")
def test_automatic_threads_do_not_change_the_weights(tiny_data, monkeypatch) -> None:
    """Tiny windows, so the run switches counts many times; weights as on all cores."""
    cores = torch.get_num_threads()

    class Twitchy(ThreadTuner):
        def __init__(self, choices: list[int]):
            super().__init__(choices, window=2, period=4, max_period=4)

    monkeypatch.setattr(fused_step, "ThreadTuner", Twitchy)
    automatic, history = _fit(tiny_data, 0)
    fixed, _ = _fit(tiny_data, cores)
    assert torch.get_num_threads() == cores  # restored after the run
    steps = history[0].get("thread_steps")
    # None: the tuner stood down, as where no two thread counts give the same weights (on the
    # machine of the measurements 2 and 1 threads agree; on some other CPUs they do not)
    if steps is not None:
        assert sum(steps.values()) == 20
        assert all(n > 0 for n in steps.values())  # every count ran
        if cores == 2:  # the machine of the measurements: both counts are in
            assert set(steps) == {"2", "1"}
    for a, b in zip(automatic.parameters(), fixed.parameters(), strict=True):
        assert torch.equal(a, b)


def _history(data, **options) -> list[dict]:
    config = TrainConfig(epochs=1, batch_size=16, **options)
    return fit(build_model("seed"), config, data.train_images[:64], data.train_labels[:64],
               progress=False, log=lambda _: None)


def test_fixed_threads_and_other_paths_have_no_tuner(tiny_data) -> None:
    assert "thread_steps" not in _history(tiny_data, threads=1)[0]
    assert "thread_steps" not in _history(tiny_data, fused=False)[0]
    assert "thread_steps" not in _history(tiny_data, numba=False)[0]
