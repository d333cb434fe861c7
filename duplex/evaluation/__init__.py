"""`inv eval`: recognition and translation quality and latency of a running stack, against a baseline."""
