"""Quotes about shipping software, served over HTTP."""

QUOTES = [
    "Real artists ship.",
    "If it hurts, do it more often.",
    "Make it work, make it right, make it fast.",
]
