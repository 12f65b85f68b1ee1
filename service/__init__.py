"""The HTTP translation service; it never imports torch."""
