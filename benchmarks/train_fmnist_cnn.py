"""Fashion-MNIST CNN: TO and WO on the emulator, both recipes, several seeds, beside the paper's figures.

nice -n 10 python benchmarks/train_fmnist_cnn.py --epochs 65 --seeds 0 1 2 --out runs/bench/fmnist-cnn
"""

import sys

from harness import main

if __name__ == "__main__":
    main("fmnist-cnn", sys.argv[1:])
