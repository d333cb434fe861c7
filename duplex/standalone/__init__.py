"""Scripts that run outside duplex: by file path in a service's venv, or copied into an image.

None of them imports duplex (tests/spine/test_architecture.py holds it): each runs where duplex is not
installed. `logpump.py` starts a detached native service and reads its output into its log;
`groupguard.py` starts an attached one and ends its process group if `inv run` dies; `wscheck.py` is
the moshi-style WebSocket health check (the runner, the moshi image, Compose and Kubernetes run it);
`drain.py` is a published pod's preStop drain (waits, bounded, for its live sessions to end);
`moshi_smoke.py` streams speech to moshi inside its container (`inv smoke`); `lhotse_fix.py` is the
lhotse post-install fix an env's own Python runs (and the NeMo image); `warm/` is the warm reloader
(see its README). duplex imports `wscheck` for its pure parts; nothing here imports back.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
