"""Markdown reports rendered from the store (templates + the code that fills them)."""
