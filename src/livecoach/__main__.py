"""``python -m livecoach``: the same as the ``livecoach`` command."""

import sys

if sys.argv[1:2] == ["serve"]:
    # the server runs again with glibc's allocator (heap.py) before the command's imports, which
    # would otherwise be paid twice (about 0.4 s of each start); cli.main does it for the script
    from .heap import use_system_malloc

    use_system_malloc(sys.argv[1:])

from .cli import main  # noqa: E402

sys.exit(main())
