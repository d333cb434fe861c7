"""The ASR server: FastAPI app transcribing uploaded audio (pocketsphinx, faster-whisper or NeMo)."""
