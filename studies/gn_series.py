"""Step 6 of the paper: tunnelling-transmissivity (G_N) series of the ZECP (`python studies/gn_series.py [--pass demo|full]`).

The same defect at setpoints V_set = 7 mV, I_set = 2-116 nA (metallic tip): each spectrum's G_n follows from its
setpoint; `mzm` (a state pinned at zero whose coupling width grows with G_n) against `ysr` (a pair at
|eps0 + alpha G_set| that splits as the tip approaches), physics.md §5, through `stsbayes series gn`.
"""

import sys

from study import series_step, step_main

STEP = series_step("gn_series", "gn", "Tunnelling-transmissivity (G_N) series of the ZECP",
                   "G_set from 0.29 to 16.6 µS ≪ G0: the ZECP splits into two branches as the tip approaches",
                   ("eps0", "alpha"), seed=6)

if __name__ == "__main__":
    sys.exit(step_main(STEP))
