"""Fashion-MNIST CNN: TO and WO on the emulator beside plain-software TO and the paper's figures.

nice -n 10 python benchmarks/train_fmnist_cnn.py --epochs 20 --out runs/bench/fmnist-cnn
"""

import sys

from rramctl.training.bench import main

if __name__ == "__main__":
    main("fmnist-cnn", sys.argv[1:])
