"""A container's files from the outside: mount and unmount its rootfs, export it, copy in
and out, list and commit what it changed, and keep artifacts beside it.

``fs.ContainerFS`` holds the operations (the engine's shape: lock, load, check, act,
save, emit); ``paths`` resolves paths inside a container as if its root were ``/``,
``tarwrite`` and ``copyin`` move trees as tar streams, ``changes`` reads an overlay's
upper directory (diff, commit), ``artifacts`` keeps small named files.
"""
