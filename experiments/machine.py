"""What the machine was doing during a run: the load average sampled in a background thread, and the busiest
other processes at the start and the end (this project's machine is shared)."""
import os
import subprocess
import threading
import time


def busiest_processes(count=6):
    """`ps` lines of the busiest processes (pid, nice, %cpu, elapsed, command), or [] where ps is missing."""
    try:
        lines = subprocess.run(["ps", "-eo", "pid,ni,pcpu,etime,args", "--sort=-pcpu"], capture_output=True,
                               text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[:160] for line in lines[1:count + 1]]


class LoadSampler:
    """Context manager that records os.getloadavg() every `interval` seconds while the block runs.

        with LoadSampler() as load:
            ...
        load.summary()  # {'samples': [...], 'mean_load1': ..., 'max_load1': ..., 'cpus': ...}
    """

    def __init__(self, interval=30.0):
        self.interval, self.samples, self.processes = interval, [], {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        load1, load5, _ = os.getloadavg()
        self.samples.append({"t_s": round(time.perf_counter() - self._started, 1), "load1": load1, "load5": load5})

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._started = time.perf_counter()
        self.processes["start"] = busiest_processes()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.processes["end"] = busiest_processes()
        return False

    def summary(self):
        loads = [sample["load1"] for sample in self.samples]
        return {"cpus": os.cpu_count(), "mean_load1": sum(loads) / max(len(loads), 1),
                "max_load1": max(loads, default=0.0), "samples": self.samples, "processes": self.processes}

    def describe(self):
        return describe_load(self.summary())


def describe_load(summary):
    """One line about a LoadSampler.summary(): the mean and peak load average over the run."""
    return (f"load average (1 min) over the run: mean {summary['mean_load1']:.1f}, max {summary['max_load1']:.1f} "
            f"on {summary['cpus']} CPUs ({len(summary['samples'])} samples)")
