"""``python -m rramctl``: the ``rramctl`` program (where pip's scripts folder is not on PATH)."""

from rramctl.cli.entry import main

if __name__ == "__main__":
    main()
