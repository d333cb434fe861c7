"""The duplex web frontend: a transcription page over the ASR server and a moshi voice-chat page."""
