"""`inv loadtest`: how many live sessions a running stack serves within its budget (docs/capacity.md)."""
