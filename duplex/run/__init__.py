"""The runtime: start, watch, stop and inspect a run (`inv run`, `stop`, `status`, `logs`, `restart`).

The whole run: `start` (plan, start every service, watch or detach), `stop` and `status` (also of
a run whose `inv` was killed), `logs`. One service: `service` (restart, stop, start, reload).
Beneath them: `inventory` (what of a run is really there; the engine behind a protocol), the
`supervisor` (order, health gating, crash policy), the two runners behind `runner.Runner` (`native`,
`containers`), `processes`, `logfile`, `health`, the run's `state` and `locks`, the `dashboard`
process's launcher and `smoke`. Nothing here imports `duplex.dashboard`:
the dashboard sits above the runtime and reads it.
"""
