"""Volumes, bind mounts and tmpfs mounts of containers.

``specs`` parses what a user writes (``-v``, ``--mount``, ``--tmpfs``) into ``Mount``
records, ``volumes.Volumes`` keeps named and anonymous volumes (directories under the
daemon's root, rows in its SQLite file), and ``part.VolumePart`` plugs both into a
container's life (core/parts.py).

Nothing is imported here: the CLI never needs this package, and the daemon imports
the modules it uses.
"""
