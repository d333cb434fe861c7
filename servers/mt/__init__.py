"""The translation server: a Qwen-family causal LM on transformers behind FastAPI."""
