"""What a translation request means, independent of HTTP: the translate use case, its request and
response bodies, sentence splitting, caching, markup and language detection."""
