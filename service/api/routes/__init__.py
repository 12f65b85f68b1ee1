"""The HTTP routes, one router per API: native (/v1), LibreTranslate, DeepL v2, operations."""
