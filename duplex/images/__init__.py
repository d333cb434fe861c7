"""Container images: the lock of pinned base images (`images.lock`), the rule for references and
digests, and the registries that serve them (Registry HTTP API v2). `duplex.pinning` fills the lock."""
