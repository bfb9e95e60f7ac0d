"""Hardware-in-the-loop training on the RRAM crossbar: edge-pruning topology optimisation (TO) of
randomly formed conductances and a write-verify weight-optimisation (WO) baseline (seed 000 Methods)."""
