"""cnnext.timing: every call runs warmup + repeats times, interleaved, and the result is the median per label."""
import time

from cnnext.timing import Timer, time_in_runs, time_interleaved


def test_time_interleaved_runs_each_call_in_turn_and_takes_medians():
    order = []
    calls = {"fast": lambda: order.append("fast"), "slow": lambda: (order.append("slow"), time.sleep(0.02))}
    times = time_interleaved(calls, warmup=2, repeats=3)
    assert order == ["fast", "fast", "slow", "slow"] + ["fast", "slow"] * 3
    assert set(times) == {"fast", "slow"}
    assert times["slow"] >= 20 > times["fast"]


def test_cpu_timer_measures_milliseconds():
    assert 9 <= Timer("cpu")(lambda: time.sleep(0.01)) < 1000


def test_time_in_runs_times_every_call_of_every_run():
    counts = {"a": 0, "b": 0}

    def counting(label):
        def call():
            counts[label] += 1
        return call
    ms = time_in_runs({"a": counting("a"), "b": counting("b")}, warmup=2, run_length=4, rounds=3)
    assert counts == {"a": 18, "b": 18} and set(ms) == {"a", "b"}
