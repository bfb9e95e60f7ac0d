"""Spoken-digit CRNN: TO and WO on the emulator, both recipes, several seeds, beside the paper's figures.
On the paper's own feature file and split (like-for-like with seed 000):

    nice -n 10 python benchmarks/train_fsdd_crnn.py \
        --features-file ../shared/datasets/spoken_digit_mfcc/fsdd_mfcc_23x20.npz

or on our MFCC maps of the FSDD recordings: --data-dir FOLDER (holding fsdd/recordings).
"""

import sys

from harness import main

if __name__ == "__main__":
    main("fsdd-crnn", sys.argv[1:])
