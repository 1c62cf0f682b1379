"""Images: pull from registries, load and save archives, import, the layer store and each
container's overlay root. ``images.Images`` holds the store and its verbs,
``part.ImagePart`` plugs it into containers' lives (core/parts.py).

Nothing is imported here: the CLI imports ``auth`` and ``reference`` alone, and the
rest (httpx, msgspec, SQLite) stays out of its start-up.
"""
