"""Wall-clock timing of alternatives, fair under load: each repeat runs every call once, in turn (or a run of
consecutive calls of each, in turn, where what a call leaves behind for the next one matters)."""
import statistics
import time

import torch


class Timer:
    """Milliseconds of one call: CUDA events on the GPU, perf_counter on the CPU; with cpu_time, the CPU time of
    all this process's threads (what a call costs in CPU work, robust to other processes on a shared machine
    where wall-clock times mostly measure the scheduler; not a latency)."""

    def __init__(self, device="cpu", cpu_time=False):
        self.cuda = str(device).startswith("cuda")
        self.clock = time.process_time if cpu_time else time.perf_counter

    def __call__(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = self.clock()
        fn()
        return (self.clock() - t0) * 1e3


def time_interleaved(calls, timer=None, warmup=1, repeats=5):
    """{label: median ms} for `calls` ({label: function without arguments}); after `warmup` untimed calls of
    each, every repeat runs every call once, in turn, so noise from other processes hits all of them alike."""
    timer = timer or Timer()
    for run in calls.values():
        for _ in range(warmup):
            run()
    samples = {label: [] for label in calls}
    for _ in range(repeats):
        for label, run in calls.items():
            samples[label].append(timer(run))
    return {label: statistics.median(values) for label, values in samples.items()}


def time_in_runs(calls, timer=None, warmup=1, run_length=10, rounds=3):
    """{label: median ms} for `calls`, each timed in runs of `run_length` consecutive calls (as the steps of an
    epoch follow one another: the caches, the allocator's free memory and the page tables a call finds are the ones
    its own previous call left), after `warmup` untimed calls at the start of each run; the runs of the calls take
    turns, `rounds` times, so noise from other processes hits all of them alike."""
    timer = timer or Timer()
    samples = {label: [] for label in calls}
    for _ in range(rounds):
        for label, run in calls.items():
            for _ in range(warmup):
                run()
            samples[label].extend(timer(run) for _ in range(run_length))
    return {label: statistics.median(values) for label, values in samples.items()}
