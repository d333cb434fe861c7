"""Working on a remote machine over SSH (issue 32, docs/remote.md): the target, the connection,
the project's sync. `inv run`'s `--on` (not built yet) builds on these."""
