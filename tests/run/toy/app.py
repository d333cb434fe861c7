"""A tiny real service for runner tests: reports health and the environment it was given."""

import os
import time

from fastapi import FastAPI, Response

app = FastAPI()
BOOT_DELAY = float(os.environ.get("TOY_BOOT_DELAY", "0"))
STOP_DELAY = float(os.environ.get("TOY_STOP_DELAY", "0"))  # a graceful drain that takes its time
STARTED = time.monotonic()
VERSION = "v1"


@app.get("/health")
def health(response: Response):
    if time.monotonic() - STARTED < BOOT_DELAY:
        response.status_code = 503
        return {"status": "loading"}
    return {"status": "ok"}


@app.get("/env")
def env():
    return {k: v for k, v in os.environ.items()
            if k.startswith(("services__", "TOY_", "HF_", "PEER")) or k in ("VIRTUAL_ENV",)}


@app.get("/version")
def version():
    return {"version": VERSION}


@app.on_event("shutdown")
def drain():
    time.sleep(STOP_DELAY)
