"""Step 5 of the paper: magnetic-field series of the ZECP (`python studies/field_series.py [--pass demo|full]`).

The same defect at 0-5 T (metallic tip): `mzm` (inert: a zero-energy state whose energy, width and weight do not
change with B) against `ysr` (responsive: eps(B) = eps0 + g_eff mu_B B / 2, width(B) = width0 + beta B, weight
kept), physics.md §5, through `stsbayes series field`.
"""

import sys

from study import series_step, step_main

STEP = series_step("field_series", "field", "Magnetic-field series of the ZECP",
                   "Little change at 2 T; at 5 T the peak height is strongly suppressed and its FWHM much broader",
                   ("eps0", "g_eff", "width0", "beta"), seed=5)

if __name__ == "__main__":
    sys.exit(step_main(STEP))
