import sys

from speechunits.cli import main

sys.exit(main())
