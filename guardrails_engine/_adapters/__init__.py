"""Provider adapters: guard the streams and replies of LLM SDKs."""
