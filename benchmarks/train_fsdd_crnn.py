"""Spoken Digit CRNN: TO and WO on the emulator beside plain-software TO and the paper's figures.
Needs RRAMCTL_DATA pointing at a folder with fsdd/recordings.

    RRAMCTL_DATA=../shared/datasets nice -n 10 python benchmarks/train_fsdd_crnn.py --epochs 60
"""

import sys

from rramctl.training.bench import main

if __name__ == "__main__":
    main("fsdd-crnn", sys.argv[1:])
