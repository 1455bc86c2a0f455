"""Step 7 of the paper: eleven defects of type IV (`python studies/defects.py [--pass demo|full]`).

Eleven defects of one type (metallic tip): `mzm` (every eps_d = 0) against `ysr` (a population of eps_d, a normal
truncated at 0), physics.md §5, through `stsbayes series defects`.
"""

import sys

from study import series_step, step_main

STEP = series_step("defects", "defects", "Eleven defects of type IV",
                   "Eleven defects of type IV all show a zero-energy conductance peak (paper Fig. 4b)",
                   ("mu_eps", "tau_eps", "mu_width", "tau_width"), seed=7)

if __name__ == "__main__":
    sys.exit(step_main(STEP))
