"""Stacks: a declarative stack file plus a lock of exact Debian packages -> a build image and a
run image, bit-for-bit reproducibly, with the package inventory kept in the images.

    spec.py       stack files -> dataclasses (errors name the field and the file)       pure
    lockfile.py   the lock model, its TOML form, and what a lock must agree with       pure
    apt.py        a private apt (sources, index, simulate, download) on the host         I/O
    lock.py       resolution: stack file -> lock, through apt                            I/O
    assemble.py   locked packages -> root file system trees, with mmdebstrap             I/O
    tree.py       root file systems -> layer entries (whole tree, or the difference)     I/O on trees
    image.py      labels, env, config, manifests of stack images                         pure
    build.py      the ``stack build`` pipeline and its cache                             I/O
    inventory.py  dpkg database and copyright files -> package list with licences     pure (+ a reader)
"""

#: Part of every cache key: bump it when a change here changes what a build produces.
STACK_BUILDER_VERSION = "2"  # 2: run and build images carry io.pallet.stack.packages
