"""The live dashboard of a run: services, health, logs, resources and actions in the browser.

Pure pieces (access, logbook, rows) are tested without a server; `server` is the ASGI app, `feeds`
the threads that fill it, `launch` starts and stops its process beside the run.
"""
