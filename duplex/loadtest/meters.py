"""What a level costs: each service's CPU, memory and GPU memory (the dashboard's sampler), and
the load generator's own CPU and timer lateness, so a report can say when the generator, not the
server, was the limit."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from ..dashboard import resources
from .ramp import spread

SAMPLE_S = 0.5   # how often services are sampled
TICK_S = 0.05    # the generator's timer: how late it fires is how late audio leaves


class Meters:
    """Sample each service's processes (`pids_of()`: service -> its pids, asked at every sample, as
    a server starts workers on its first session) and the generator itself until stopped."""

    def __init__(self, pids_of: Callable[[], dict[str, list[int]]]):
        self.pids_of = pids_of
        self.samples: dict[str, list[dict]] = {}
        self.lateness: list[float] = []
        self._gpu = True  # stops asking NVML after the first "no GPU"
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Meters:
        for pids in self.pids_of().values():
            resources.usage(pids)  # starts each process's CPU measurement
        self._wall, self._cpu = time.monotonic(), time.process_time()
        self._tasks = [asyncio.create_task(self._sample()), asyncio.create_task(self._tick())]
        return self

    async def __aexit__(self, *exc) -> None:
        self.wall_s = time.monotonic() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            table = resources.gpu_processes() if self._gpu else None
            self._gpu = table is not None
            for name, pids in self.pids_of().items():
                seen = resources.usage(pids)
                used = resources.gpu_memory(pids, table)
                self.samples.setdefault(name, []).append({"cpu": seen["cpu"], "memory": seen["memory"],
                                           "gpu": sum(g["used"] for g in used) if used else None})

    async def _tick(self) -> None:
        while True:
            due = time.monotonic() + TICK_S
            await asyncio.sleep(TICK_S)
            self.lateness.append(max(0.0, time.monotonic() - due))

    def generator(self) -> dict:
        """The generator's CPU (% of one core: its event loop is one thread) and timer lateness."""
        late = spread(self.lateness)
        return {"cpu": round(100 * self.cpu_s / max(self.wall_s, 1e-6), 1), "lag_p95": late["p95"],
                "lag_p99": late["p99"]}

    def services(self, audio_s: float) -> dict:
        """Per service: mean and peak CPU (% of one core), peak memory and GPU memory (bytes), and
        the CPU seconds spent per second of audio streamed (its real-time factor on this CPU)."""
        found = {}
        for name, samples in self.samples.items():
            if not samples:
                continue
            cpu = [s["cpu"] for s in samples]
            gpus = [s["gpu"] for s in samples if s["gpu"] is not None]
            mean = sum(cpu) / len(cpu)
            found[name] = {"cpu_mean": round(mean, 1), "cpu_peak": round(max(cpu), 1),
                           "memory_peak": max(s["memory"] for s in samples),
                           "gpu_memory_peak": max(gpus) if gpus else None,
                           "rtf_cpu": round(mean / 100 * self.wall_s / audio_s, 3) if audio_s else None}
        return found
