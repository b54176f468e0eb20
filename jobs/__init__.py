"""Spark entry points. Each ``jobs/<name>.py`` has a ``main(argv)`` that reads top to bottom."""
