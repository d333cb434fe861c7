"""Servers duplex ships: plain apps configured by environment variables (never import duplex)."""
